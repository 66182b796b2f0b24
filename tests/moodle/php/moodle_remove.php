<?php
// Moodle's own removal of what postsync made: for IDNUMBER in COURSE (shortname), each
// group membership by groups_remove_member(), each role by role_unassign(), each
// enrolment by the plugin's unenrol_user(). Then the rows Moodle would leave: JSON
// {"errors": [...], "left": {table: count}}.
//   php moodle_remove.php COURSE IDNUMBER
require(__DIR__ . '/lib.php');

[$course, $user] = lab_course_user($argv[1], $argv[2]);
$context = context_course::instance($course->id);
$errors = [];
foreach (groups_get_all_groups($course->id, $user->id) as $group) {
    try { groups_remove_member($group->id, $user->id); } catch (Throwable $e) { $errors[] = $e->getMessage(); }
}
foreach (get_user_roles($context, $user->id, false) as $ra) {
    try { role_unassign($ra->roleid, $user->id, $context->id, $ra->component, $ra->itemid); }
    catch (Throwable $e) { $errors[] = $e->getMessage(); }
}
foreach (enrol_get_instances($course->id, false) as $instance) {
    if ($DB->record_exists('user_enrolments', ['enrolid' => $instance->id, 'userid' => $user->id])) {
        try { enrol_get_plugin($instance->enrol)->unenrol_user($instance, $user->id); }
        catch (Throwable $e) { $errors[] = $e->getMessage(); }
    }
}
$left = [
    'user_enrolments' => $DB->count_records_sql('SELECT COUNT(1) FROM {user_enrolments} ue
        JOIN {enrol} e ON e.id = ue.enrolid WHERE e.courseid = ? AND ue.userid = ?', [$course->id, $user->id]),
    'role_assignments' => $DB->count_records('role_assignments', ['contextid' => $context->id, 'userid' => $user->id]),
    'groups_members' => $DB->count_records_sql('SELECT COUNT(1) FROM {groups_members} gm
        JOIN {groups} g ON g.id = gm.groupid WHERE g.courseid = ? AND gm.userid = ?', [$course->id, $user->id]),
];
echo json_encode(['errors' => $errors, 'left' => $left]), "\n";
