<?php
// A user's groups in a course as Moodle's cached API answers (groups_get_user_groups and
// groups_get_all_groups read the course's group data from Moodle's application cache,
// which lives in the dataroot and outlasts the process), and as the database holds them.
//   php user_groups.php COURSE IDNUMBER
require(__DIR__ . '/lib.php');
[$course, $user] = lab_course_user($argv[1], $argv[2]);
$names = fn($groups) => array_values(array_map(fn($g) => $g->name, $groups));
$cached = $names(groups_get_all_groups($course->id, $user->id));
$all = $names(groups_get_all_groups($course->id));
$table = $DB->get_fieldset_sql('SELECT g.name FROM {groups} g JOIN {groups_members} m ON m.groupid = g.id
    WHERE g.courseid = ? AND m.userid = ? ORDER BY g.name', [$course->id, $user->id]);
sort($cached); sort($all);
echo json_encode(['api' => $cached, 'course_groups' => $all, 'database' => $table]), "\n";
