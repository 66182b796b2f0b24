<?php
// The lab's seeded state, made through Moodle's own API (so it is what a site has).
//   courses MATH101 (idnumber C101), PHYS102 (C102), CHEM103 (C103), with the enrol
//   instances create_course() adds; users u01..u10 (idnumber S001..S010, auth manual);
//   S009 a student of C101 (manual) and a member of its group G1; S010 a student of
//   C102; empty groups "Old" in C103 and "Spare" in C102.
// Prints what it made as JSON.
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
require_once($CFG->dirroot . '/course/lib.php');
require_once($CFG->dirroot . '/user/lib.php');
require_once($CFG->dirroot . '/group/lib.php');
require_once($CFG->libdir . '/enrollib.php');

\core\session\manager::set_user(get_admin());
$category = $DB->get_field_sql('SELECT MIN(id) FROM {course_categories}');
$courses = [];
foreach ([['MATH101', 'C101'], ['PHYS102', 'C102'], ['CHEM103', 'C103']] as [$short, $idnumber]) {
    $courses[$idnumber] = $DB->get_record('course', ['shortname' => $short])
        ?: create_course((object)['category' => $category, 'shortname' => $short,
            'idnumber' => $idnumber, 'fullname' => $short, 'summary' => '', 'format' => 'topics']);
}
$users = [];
for ($i = 1; $i <= 10; $i++) {
    $username = sprintf('u%02d', $i);
    $user = $DB->get_record('user', ['username' => $username]);
    if (!$user) {
        $id = user_create_user((object)['username' => $username, 'password' => 'Pass-word-1234',
            'firstname' => 'User', 'lastname' => $username, 'email' => "$username@example.com",
            'idnumber' => sprintf('S%03d', $i), 'auth' => 'manual', 'confirmed' => 1,
            'mnethostid' => $CFG->mnet_localhost_id], true, true);
        $user = $DB->get_record('user', ['id' => $id]);
    }
    $users[$user->idnumber] = $user;
}
$manual = enrol_get_plugin('manual');
$student = $DB->get_field('role', 'id', ['shortname' => 'student']);
foreach ([['C101', 'S009'], ['C102', 'S010']] as [$course, $user]) {
    $instance = $DB->get_record('enrol', ['courseid' => $courses[$course]->id, 'enrol' => 'manual']);
    $manual->enrol_user($instance, $users[$user]->id, $student);
}
function lab_group($course, $name, $idnumber) {
    global $DB;
    return $DB->get_field('groups', 'id', ['courseid' => $course->id, 'name' => $name])
        ?: groups_create_group((object)['courseid' => $course->id, 'name' => $name, 'idnumber' => $idnumber]);
}
groups_add_member(lab_group($courses['C101'], 'G1', 'C101-G1'), $users['S009']->id);
lab_group($courses['C103'], 'Old', 'C103-OLD');
lab_group($courses['C102'], 'Spare', 'C102-SPARE');
echo json_encode(['courses' => count($courses), 'users' => count($users),
    'user_enrolments' => $DB->count_records('user_enrolments'),
    'groups' => $DB->count_records('groups')]), "\n";
