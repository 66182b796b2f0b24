<?php
// Moodle's own enrol_user, again and again, while another writer runs: each call enrols
// one of USERS (idnumbers, in turn) in COURSE (idnumber) through the manual plugin, as a
// teacher's request would, and is timed; at least once, then until STOPFILE exists.
// Prints the calls' latencies in seconds as JSON ({"latencies": [...], "errors": N}).
//   php enrol_loop.php COURSE STOPFILE USER...
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
require_once($CFG->libdir . '/enrollib.php');
\core\session\manager::set_user(get_admin());
$course = $DB->get_record('course', ['idnumber' => $argv[1]], '*', MUST_EXIST);
$instance = $DB->get_record('enrol', ['courseid' => $course->id, 'enrol' => 'manual'], '*', MUST_EXIST);
$role = $DB->get_field('role', 'id', ['shortname' => 'student'], MUST_EXIST);
$users = array_values($DB->get_records_list('user', 'idnumber', array_slice($argv, 3), '', 'id'));
$plugin = enrol_get_plugin('manual');
$latencies = [];
$errors = 0;
$i = 0;
do {  // at least once: the first call may come after the other writer is done
    $user = $users[$i++ % count($users)];
    $start = microtime(true);
    try {
        $plugin->enrol_user($instance, $user->id, $role);
    } catch (Throwable $e) {
        $errors++;  // the other writer's row, made meanwhile
    }
    $latencies[] = microtime(true) - $start;
    usleep(20000);
} while (!file_exists($argv[2]));
echo json_encode(['latencies' => $latencies, 'errors' => $errors]), "\n";
