<?php
// The event names logstore_standard_log holds for USER (idnumber) in COURSE (shortname),
// as JSON: what Moodle's reports and log-based features see of a change.
//   php log_events.php COURSE IDNUMBER
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
[$course, $user] = [$DB->get_record('course', ['shortname' => $argv[1]], '*', MUST_EXIST),
                    $DB->get_record('user', ['idnumber' => $argv[2]], '*', MUST_EXIST)];
$events = $DB->get_fieldset_sql('SELECT DISTINCT eventname FROM {logstore_standard_log}
    WHERE courseid = ? AND relateduserid = ?', [$course->id, $user->id]);
sort($events);
echo json_encode(['events' => $events]), "\n";
