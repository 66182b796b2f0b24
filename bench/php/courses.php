<?php
// N courses made through Moodle's API (create_course: each with its manual enrolment
// instance), shortname and idnumber C001..CNNN, for the anchors bench (bench/anchors.py).
//   php courses.php N
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
require_once($CFG->dirroot . '/course/lib.php');
\core\session\manager::set_user(get_admin());
$made = 0;
for ($i = 1; $i <= (int)$argv[1]; $i++) {
    $name = sprintf('C%03d', $i);
    if ($DB->record_exists('course', ['shortname' => $name])) {
        continue;
    }
    create_course((object)['fullname' => "Anchor course $name", 'shortname' => $name,
        'idnumber' => $name, 'category' => 1]);
    $made++;
}
echo json_encode(['made' => $made]), "\n";
