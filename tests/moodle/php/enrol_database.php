<?php
// Moodle's enrol_database sync as a site administrator would run it: the external
// table `ext_roster` (course idnumber, user idnumber, role shortname) in the site's
// own database, the plugin enabled and pointed at it, the roster's ROWS written there
// ("C101:S001:student,..."), then $plugin->sync_enrolments() with the unenrolaction
// ACTION (0 unenrol, 1 keep, 2 suspend, 3 suspend and remove roles). Prints what the
// plugin's instances hold: JSON [[course, user, status, [role/component...]], ...].
//   php enrol_database.php setup COURSE       (the plugin enabled, an instance in COURSE)
//   php enrol_database.php sync ACTION ROWS
//   php enrol_database.php list               (what the plugin's instances hold)
require(__DIR__ . '/lib.php');

function held(): array {
    global $DB;
    $held = $DB->get_records_sql("SELECT ue.id, c.idnumber AS course, u.idnumber AS usr, ue.status, ue.userid, e.courseid
        FROM {user_enrolments} ue JOIN {enrol} e ON e.id = ue.enrolid AND e.enrol = 'database'
        JOIN {course} c ON c.id = e.courseid JOIN {user} u ON u.id = ue.userid ORDER BY c.idnumber, u.idnumber");
    $out = [];
    foreach ($held as $ue) {
        $context = context_course::instance($ue->courseid);
        $roles = array_map(fn($ra) => $DB->get_field('role', 'shortname', ['id' => $ra->roleid]) . '/' . $ra->component,
            array_values($DB->get_records('role_assignments', ['contextid' => $context->id, 'userid' => $ue->userid])));
        sort($roles);
        $out[] = [$ue->course, $ue->usr, (int)$ue->status, $roles];
    }
    return $out;
}

if ($argv[1] === 'list') {
    echo json_encode(['enrolments' => held()]), "\n";
    exit(0);
}

$plugin = enrol_get_plugin('database');
if ($argv[1] === 'setup') {
    $enabled = explode(',', $CFG->enrol_plugins_enabled);
    if (!in_array('database', $enabled)) {
        $enabled[] = 'database';
        set_config('enrol_plugins_enabled', implode(',', $enabled));
    }
    $course = $DB->get_record('course', ['shortname' => $argv[2]], '*', MUST_EXIST);
    if (!$DB->record_exists('enrol', ['courseid' => $course->id, 'enrol' => 'database'])) {
        $plugin->add_instance($course);
    }
    echo json_encode(['ok' => true]), "\n";
    exit(0);
}
$DB->execute('CREATE TABLE IF NOT EXISTS ext_roster (course VARCHAR(100), usr VARCHAR(100), role VARCHAR(100))');
$DB->execute('DELETE FROM ext_roster');
foreach (array_filter(explode(',', $argv[3])) as $row) {
    [$c, $u, $r] = explode(':', $row);
    $DB->execute('INSERT INTO ext_roster (course, usr, role) VALUES (?, ?, ?)', [$c, $u, $r]);
}
$settings = [
    'dbtype' => 'postgres', 'dbhost' => $CFG->dbhost . (empty($CFG->dboptions['dbport']) ? '' : ':' . $CFG->dboptions['dbport']),
    'dbuser' => $CFG->dbuser, 'dbpass' => $CFG->dbpass, 'dbname' => $CFG->dbname,
    'remoteenroltable' => 'ext_roster', 'remotecoursefield' => 'course', 'remoteuserfield' => 'usr',
    'remoterolefield' => 'role', 'localcoursefield' => 'idnumber', 'localuserfield' => 'idnumber',
    'localrolefield' => 'shortname', 'unenrolaction' => (int)$argv[2], 'ignorehiddencourses' => 0,
    'defaultrole' => $DB->get_field('role', 'id', ['shortname' => 'student']),
];
foreach ($settings as $name => $value) {
    set_config($name, $value, 'enrol_database');
}
$plugin = enrol_get_plugin('database');  // the settings read afresh
$trace = new null_progress_trace();
$result = $plugin->sync_enrolments($trace);
echo json_encode(['result' => $result, 'enrolments' => held()]), "\n";
