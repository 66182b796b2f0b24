<?php
// enrol_flatfile enabled and pointed at FILE (its `location`), a `del` line unenrolling
// (unenrolaction: unenrol), no mail: what an administrator sets before its scheduled
// task (\enrol_flatfile\task\flatfile_sync_task) reads the file.
//   php flatfile.php FILE
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
$enabled = explode(',', $CFG->enrol_plugins_enabled);
if (!in_array('flatfile', $enabled)) {
    $enabled[] = 'flatfile';
    set_config('enrol_plugins_enabled', implode(',', $enabled));
}
set_config('location', $argv[1], 'enrol_flatfile');
set_config('unenrolaction', ENROL_EXT_REMOVED_UNENROL, 'enrol_flatfile');
foreach (['mailstudents', 'mailteachers', 'mailadmins'] as $name) {
    set_config($name, 0, 'enrol_flatfile');
}
echo json_encode(['location' => $argv[1]]), "\n";
