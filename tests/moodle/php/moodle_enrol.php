<?php
// The change a control-file line asks for, made through Moodle's own API, for comparison:
// enrol IDNUMBER in COURSE with ROLE (manual plugin) and add them to GROUP (by name) when
// given. (Moodle's log store writes its buffer when the script ends: read the events it
// logged from another process, log_events.php.)
//   php moodle_enrol.php COURSE IDNUMBER ROLE [GROUP]
require(__DIR__ . '/lib.php');

[$course, $user] = lab_course_user($argv[1], $argv[2]);
$role = $DB->get_field('role', 'id', ['shortname' => $argv[3]], MUST_EXIST);
$instance = $DB->get_record('enrol', ['courseid' => $course->id, 'enrol' => 'manual'], '*', MUST_EXIST);
enrol_get_plugin('manual')->enrol_user($instance, $user->id, $role);
if (!empty($argv[4])) {
    groups_add_member($DB->get_field('groups', 'id', ['courseid' => $course->id, 'name' => $argv[4]], MUST_EXIST), $user->id);
}
echo json_encode(['enrolled' => is_enrolled(context_course::instance($course->id), $user)]), "\n";
