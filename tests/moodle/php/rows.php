<?php
// The rows a user has in a course, as Moodle's unenrol_user() would clean them: enrolments,
// role assignments in the course context and its children, group memberships,
// user_lastaccess. Counts and the (component, role) of what is left, as JSON.
//   php rows.php COURSE IDNUMBER
require(__DIR__ . '/lib.php');
[$course, $user] = lab_course_user($argv[1], $argv[2]);
$context = context_course::instance($course->id);
$roles = $DB->get_records_sql("SELECT ra.id, ra.component, r.shortname, ctx.contextlevel
    FROM {role_assignments} ra JOIN {role} r ON r.id = ra.roleid JOIN {context} ctx ON ctx.id = ra.contextid
    WHERE ra.userid = ? AND (ctx.id = ? OR ctx.path LIKE ?)", [$user->id, $context->id, $context->path . '/%']);
$described = array_values(array_map(fn($r) => "$r->shortname@$r->contextlevel/$r->component", $roles));
sort($described);
echo json_encode([
    'user_enrolments' => $DB->count_records_sql('SELECT COUNT(1) FROM {user_enrolments} ue
        JOIN {enrol} e ON e.id = ue.enrolid WHERE e.courseid = ? AND ue.userid = ?', [$course->id, $user->id]),
    'role_assignments' => $described,
    'groups_members' => $DB->count_records_sql('SELECT COUNT(1) FROM {groups_members} gm
        JOIN {groups} g ON g.id = gm.groupid WHERE g.courseid = ? AND gm.userid = ?', [$course->id, $user->id]),
    'user_lastaccess' => $DB->count_records('user_lastaccess', ['courseid' => $course->id, 'userid' => $user->id]),
]), "\n";
