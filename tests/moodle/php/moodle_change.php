<?php
// A control-file line's change done through Moodle's own API, for comparison:
//   php moodle_change.php shift COURSE IDNUMBER ROLE      the user's roles in the course
//       (role_unassign of each) replaced by ROLE (role_assign)
//   php moodle_change.php greplace COURSE IDNUMBER GROUP  the user's groups in the course
//       (groups_remove_member of each) replaced by GROUP (groups_add_member)
//   php moodle_change.php gdel COURSE IDNUMBER GROUP      the user taken out of GROUP
//       (groups_remove_member)
require(__DIR__ . '/lib.php');
[$op, $short, $idnumber, $target] = array_slice($argv, 1, 4);
[$course, $user] = lab_course_user($short, $idnumber);
$context = context_course::instance($course->id);
if ($op === 'shift') {
    foreach (get_user_roles($context, $user->id, false) as $ra) {
        role_unassign($ra->roleid, $user->id, $context->id, $ra->component, $ra->itemid);
    }
    role_assign($DB->get_field('role', 'id', ['shortname' => $target], MUST_EXIST), $user->id, $context->id);
} else if ($op === 'gdel') {
    groups_remove_member($DB->get_field('groups', 'id', ['courseid' => $course->id, 'name' => $target], MUST_EXIST), $user->id);
} else {
    foreach (groups_get_all_groups($course->id, $user->id) as $group) {
        groups_remove_member($group->id, $user->id);
    }
    groups_add_member($DB->get_field('groups', 'id', ['courseid' => $course->id, 'name' => $target], MUST_EXIST), $user->id);
}
echo json_encode(['done' => $op]), "\n";
