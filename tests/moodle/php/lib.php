<?php
// What the check scripts start with: Moodle's config for the site LAB_DB names, its
// enrolment and group libraries, and the course (shortname) and user (idnumber) named
// by two arguments.
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
require_once($CFG->libdir . '/enrollib.php');
require_once($CFG->dirroot . '/group/lib.php');

function lab_course_user(string $shortname, string $idnumber): array {
    global $DB;
    return [$DB->get_record('course', ['shortname' => $shortname], '*', MUST_EXIST),
            $DB->get_record('user', ['idnumber' => $idnumber], '*', MUST_EXIST)];
}
