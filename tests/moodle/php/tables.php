<?php
// What a sync leaves in Moodle's tables, by names rather than ids (so two sites compare):
// user_enrolments, role_assignments, groups, groups_members. JSON on stdout.
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
$rows = fn($sql) => array_values(array_map(fn($r) => implode('|', array_values((array)$r)),
    $DB->get_records_sql($sql)));
$out = [
    'user_enrolments' => $rows("SELECT ue.id, c.shortname, e.enrol, u.idnumber, ue.status
        FROM {user_enrolments} ue JOIN {enrol} e ON e.id = ue.enrolid JOIN {course} c ON c.id = e.courseid
        JOIN {user} u ON u.id = ue.userid"),
    'role_assignments' => $rows("SELECT ra.id, ctx.contextlevel, c.shortname, u.idnumber, r.shortname AS role, ra.component, ra.itemid
        FROM {role_assignments} ra JOIN {context} ctx ON ctx.id = ra.contextid JOIN {user} u ON u.id = ra.userid
        JOIN {role} r ON r.id = ra.roleid LEFT JOIN {course} c ON c.id = ctx.instanceid AND ctx.contextlevel = 50"),
    'groups' => $rows("SELECT g.id, c.shortname, g.name, g.idnumber FROM {groups} g JOIN {course} c ON c.id = g.courseid"),
    'groupings_groups' => $rows("SELECT gg.id, c.shortname, gr.name AS grouping, g.name
        FROM {groupings_groups} gg JOIN {groupings} gr ON gr.id = gg.groupingid
        JOIN {groups} g ON g.id = gg.groupid JOIN {course} c ON c.id = g.courseid"),
    'groups_members' => $rows("SELECT m.id, c.shortname, g.name, u.idnumber, m.component, m.itemid
        FROM {groups_members} m JOIN {groups} g ON g.id = m.groupid JOIN {course} c ON c.id = g.courseid
        JOIN {user} u ON u.id = m.userid"),
];
foreach ($out as $k => $v) {
    // without the row id (first field): ids and times of the sites differ by construction
    $out[$k] = array_map(fn($line) => substr($line, strpos($line, '|') + 1), $v);
    sort($out[$k]);
}
echo json_encode($out), "\n";
