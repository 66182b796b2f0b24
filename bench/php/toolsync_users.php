<?php
// tool_sync's users sync of FILE, as its scheduled task (usersync_task) runs it: the file
// put in its file area as userimport.csv, users by idnumber, ';' as separator, e-mail
// addresses protected (its default), then the manager's cron(). Prints {"ran": true}.
//   php toolsync_users.php FILE
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
require_once($CFG->dirroot . '/admin/tool/sync/lib.php');
require_once($CFG->dirroot . '/admin/tool/sync/users/users.class.php');
\core\session\manager::set_user(get_admin());
$settings = ['csvseparator' => ';', 'users_primaryidentity' => 'idnumber',
    'users_filelocation' => '', 'users_createpasswords' => 0, 'users_sendpasswordtousers' => 0];
foreach ($settings as $name => $value) {
    set_config($name, $value, 'tool_sync');
}
$fs = get_file_storage();
$context = context_system::instance();
$fs->delete_area_files($context->id, 'tool_sync', 'syncfiles');
$fs->create_file_from_pathname(['contextid' => $context->id, 'component' => 'tool_sync',
    'filearea' => 'syncfiles', 'itemid' => 0, 'filepath' => '/', 'filename' => 'userimport.csv'],
    $argv[1]);
$manager = new \tool_sync\users_sync_manager();
$manager->cron(get_config('tool_sync'));
echo json_encode(['ran' => true]), "\n";
