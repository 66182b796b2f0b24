<?php
// The event names logstore_standard_log holds for USER (idnumber) in COURSE (shortname),
// as JSON: what Moodle's reports and log-based features see of a change.
//   php log_events.php COURSE IDNUMBER
require(__DIR__ . '/lib.php');
[$course, $user] = lab_course_user($argv[1], $argv[2]);
$events = $DB->get_fieldset_sql('SELECT DISTINCT eventname FROM {logstore_standard_log}
    WHERE courseid = ? AND relateduserid = ?', [$course->id, $user->id]);
sort($events);
echo json_encode(['events' => $events]), "\n";
