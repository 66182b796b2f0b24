<?php
// What Moodle's access checks answer for IDNUMBER in COURSE in this process: the roles
// (get_user_roles), and whether they may manage activities and are enrolled, through
// has_capability() and is_enrolled(), which use Moodle's cached access data.
//   php access.php COURSE IDNUMBER
require(__DIR__ . '/lib.php');
[$course, $user] = lab_course_user($argv[1], $argv[2]);
$context = context_course::instance($course->id);
$roles = array_values(array_unique(array_map(fn($r) => $r->shortname, get_user_roles($context, $user->id, false))));
sort($roles);
echo json_encode(['roles' => $roles,
    'manage_activities' => has_capability('moodle/course:manageactivities', $context, $user),
    'enrolled' => is_enrolled($context, $user)]), "\n";
