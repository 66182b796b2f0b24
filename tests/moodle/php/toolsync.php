<?php
// tool_sync's own sync of FILE, as its scheduled tasks run it: the file put in its file
// area (tool_sync/syncfiles) under the name it looks for, courses, users and groups by
// idnumber, ';' as separator (users: no password made or mailed for a line without
// one, e-mail addresses protected: its defaults), then the manager's cron(). Prints
// {"ran": true} as JSON.
//   php toolsync.php enrols|groupmembers|users FILE
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
require_once($CFG->dirroot . '/admin/tool/sync/lib.php');
require_once($CFG->dirroot . '/admin/tool/sync/enrols/enrols.class.php');
require_once($CFG->dirroot . '/admin/tool/sync/groups/groups.class.php');
require_once($CFG->dirroot . '/admin/tool/sync/users/users.class.php');
\core\session\manager::set_user(get_admin());
[$kind, $file] = [$argv[1], $argv[2]];
$settings = ['csvseparator' => ';', 'enrols_courseidentifier' => 'idnumber',
    'enrols_useridentifier' => 'idnumber', 'enrols_filelocation' => '',
    'groups_courseidentifier' => 'idnumber', 'groups_useridentifier' => 'idnumber',
    'groups_groupidentifier' => 'idnumber', 'groupmembers_filelocation' => '',
    'users_primaryidentity' => 'idnumber', 'users_filelocation' => '',
    'users_createpasswords' => 0, 'users_sendpasswordtousers' => 0];
foreach ($settings as $name => $value) {
    set_config($name, $value, 'tool_sync');
}
$fs = get_file_storage();
$context = context_system::instance();
$fs->delete_area_files($context->id, 'tool_sync', 'syncfiles');
$fs->create_file_from_pathname(['contextid' => $context->id, 'component' => 'tool_sync',
    'filearea' => 'syncfiles', 'itemid' => 0, 'filepath' => '/',
    'filename' => $kind === 'users' ? 'userimport.csv' : "$kind.csv"], $file);
$manager = match ($kind) {
    'enrols' => new \tool_sync\enrol_sync_manager(),
    'users' => new \tool_sync\users_sync_manager(),
    default => new \tool_sync\group_sync_manager(SYNC_GROUP_MEMBERS),
};
$manager->cron(get_config('tool_sync'));
echo json_encode(['ran' => true]), "\n";
