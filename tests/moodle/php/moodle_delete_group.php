<?php
// Moodle's own deletion of a group (groups_delete_group), for comparison:
//   php moodle_delete_group.php COURSE GROUPNAME
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
require_once($CFG->dirroot . '/group/lib.php');
$course = $DB->get_record('course', ['shortname' => $argv[1]], '*', MUST_EXIST);
$group = $DB->get_record('groups', ['courseid' => $course->id, 'name' => $argv[2]], '*', MUST_EXIST);
echo json_encode(['deleted' => groups_delete_group($group)]), "\n";
