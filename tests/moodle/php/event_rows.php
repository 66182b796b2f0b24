<?php
// The rows logstore_standard_log holds above id SINCE, each with its ids named by what
// they stand for (a user by username, a course by shortname, a group by name, a cohort
// by idnumber, a user enrolment by course and user), ids and times aside, as JSON:
// what two sites that made the same changes can compare.
//   php event_rows.php SINCE          (SINCE: 0, or `max` for the highest id now)
require(__DIR__ . '/lib.php');
if ($argv[1] === 'max') {
    echo json_encode(['max' => (int)$DB->get_field_sql('SELECT MAX(id) FROM {logstore_standard_log}')]), "\n";
    exit(0);
}
function uname($id) { global $DB; return $id ? ($DB->get_field('user', 'username', ['id' => $id]) ?: "user?$id") : $id; }
function cshort($id) { global $DB; return $id ? ($DB->get_field('course', 'shortname', ['id' => $id]) ?: "course?$id") : $id; }
function named($table, $id) {
    global $DB;
    switch ($table) {
        case 'user': return uname($id);
        case 'groups': case 'groupings': return $DB->get_field($table, 'name', ['id' => $id]) ?: "$table?gone";
        case 'cohort': return $DB->get_field('cohort', 'idnumber', ['id' => $id]) ?: 'cohort?gone';
        case 'role': return $DB->get_field('role', 'shortname', ['id' => $id]);
        case 'enrol': return $DB->get_field('enrol', 'enrol', ['id' => $id]) ?: 'enrol?gone';
        case 'user_enrolments':
            $ue = $DB->get_record('user_enrolments', ['id' => $id]);
            return $ue ? 'ue:' . uname($ue->userid) : 'ue:gone';
    }
    return $id;
}
$rows = [];
foreach ($DB->get_records_select('logstore_standard_log', 'id > ?', [(int)$argv[1]], 'id') as $r) {
    $other = json_decode($r->other, true);
    if (is_array($other)) {
        if (isset($other['id'])) { $other['id'] = 'ra'; }
        if (isset($other['groupid'])) { $other['groupid'] = named('groups', $other['groupid']); }
        if (isset($other['userenrolment'])) {
            $ue = &$other['userenrolment'];
            foreach (['id', 'timecreated', 'timemodified'] as $k) { if (isset($ue[$k])) { $ue[$k] = 'x'; } }
            foreach (['userid', 'modifierid'] as $k) { if (isset($ue[$k])) { $ue[$k] = uname($ue[$k]); } }
            if (isset($ue['courseid'])) { $ue['courseid'] = cshort($ue['courseid']); }
            if (isset($ue['enrolid'])) { $ue['enrolid'] = named('enrol', $ue['enrolid']); }
            unset($ue);
        }
    }
    $instance = $r->contextinstanceid;
    if ($r->contextlevel == CONTEXT_COURSE) { $instance = cshort($instance); }
    if ($r->contextlevel == CONTEXT_USER) { $instance = uname($instance); }
    $rows[] = ['eventname' => $r->eventname, 'component' => $r->component, 'action' => $r->action,
        'target' => $r->target, 'objecttable' => $r->objecttable,
        'objectid' => $r->objecttable ? named($r->objecttable, $r->objectid) : $r->objectid,
        'crud' => $r->crud, 'edulevel' => (int)$r->edulevel, 'contextlevel' => (int)$r->contextlevel,
        'contextinstance' => $instance, 'userid' => uname($r->userid), 'relateduserid' => uname($r->relateduserid),
        'courseid' => cshort($r->courseid), 'other' => $other, 'origin' => $r->origin];
}
echo json_encode($rows), "\n";
