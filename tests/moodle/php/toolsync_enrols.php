<?php
// tool_sync's own enrolment sync on FILE, as its scheduled task runs it: the file put in
// its file area (tool_sync/syncfiles, /enrols.csv), courses and users by idnumber, ';'
// as separator, then enrol_sync_manager::cron(). Prints {"ran": true} as JSON.
//   php toolsync_enrols.php FILE
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
require_once($CFG->dirroot . '/admin/tool/sync/lib.php');
require_once($CFG->dirroot . '/admin/tool/sync/enrols/enrols.class.php');
\core\session\manager::set_user(get_admin());
set_config('enrols_courseidentifier', 'idnumber', 'tool_sync');
set_config('enrols_useridentifier', 'idnumber', 'tool_sync');
set_config('csvseparator', ';', 'tool_sync');
set_config('enrols_filelocation', '', 'tool_sync');
$fs = get_file_storage();
$context = context_system::instance();
$fs->delete_area_files($context->id, 'tool_sync', 'syncfiles');
$fs->create_file_from_pathname(['contextid' => $context->id, 'component' => 'tool_sync',
    'filearea' => 'syncfiles', 'itemid' => 0, 'filepath' => '/', 'filename' => 'enrols.csv'], $argv[1]);
(new \tool_sync\enrol_sync_manager())->cron(get_config('tool_sync'));
echo json_encode(['ran' => true]), "\n";
