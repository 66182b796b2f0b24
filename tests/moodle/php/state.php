<?php
// What Moodle's own API says of every course (but the site course): for each user
// enrol_get_course_users() lists, is_enrolled(), get_user_roles() in the course context,
// and each group's members by groups_get_members(). JSON on stdout.
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
require_once($CFG->libdir . '/enrollib.php');
require_once($CFG->dirroot . '/group/lib.php');

$out = [];
foreach ($DB->get_records_select('course', 'id <> ?', [SITEID], 'shortname') as $course) {
    $context = context_course::instance($course->id);
    $users = [];
    foreach (enrol_get_course_users($course->id) as $ue) {
        $user = $DB->get_record('user', ['id' => $ue->id]);
        $roles = array_values(array_unique(array_map(fn($r) => $r->shortname,
            get_user_roles($context, $user->id, false))));
        sort($roles);
        $users[$user->idnumber] = ['enrolled' => is_enrolled($context, $user),
                                   'active' => is_enrolled($context, $user, '', true),
                                   'roles' => $roles];
    }
    ksort($users);
    $groups = [];
    foreach (groups_get_all_groups($course->id) as $group) {
        $members = array_map(fn($u) => $u->idnumber, array_values(groups_get_members($group->id)));
        sort($members);
        $groups[$group->name] = $members;
    }
    ksort($groups);
    $out[$course->shortname] = ['users' => (object)$users, 'groups' => (object)$groups];
}
echo json_encode($out), "\n";
