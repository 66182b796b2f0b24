<?php
// Users, cohorts and groups as Moodle's own API sees them, or made by it:
//   php people.php show USERNAME PASSWORD...   each user's fields, context, whether the
//       password logs in (authenticate_user_login), and what get_complete_user_data has
//   php people.php create JSON                 user_create_user for each user of JSON
//       (a list of field objects, password in clear), as an administrator's upload
//   php people.php delete IDNUMBER             delete_user
//   php people.php cohorts                     each cohort (cohort_get_cohorts of the
//       system context and categories) with its members' idnumbers
//   php people.php groups COURSE               the course's groups and groupings as
//       groups_get_all_groups and groups_get_all_groupings report them
require(__DIR__ . '/lib.php');
require_once($CFG->dirroot . '/user/lib.php');
require_once($CFG->dirroot . '/cohort/lib.php');
\core\session\manager::set_user(get_admin());
$op = $argv[1];
$out = [];
if ($op === 'show') {
    foreach (array_chunk(array_slice($argv, 2), 2) as [$username, $password]) {
        $user = $DB->get_record('user', ['username' => $username, 'deleted' => 0]);
        if (!$user) {
            $out[$username] = null;
            continue;
        }
        $context = $DB->get_record('context', ['contextlevel' => CONTEXT_USER, 'instanceid' => $user->id]);
        $failure = 0;
        $login = authenticate_user_login($username, $password, false, $failure);
        $complete = get_complete_user_data('id', $user->id);
        $fields = [];
        foreach (['auth', 'confirmed', 'mnethostid', 'idnumber', 'firstname', 'lastname', 'email',
                  'city', 'country', 'lang', 'timezone', 'calendartype', 'mailformat',
                  'maildisplay', 'maildigest', 'autosubscribe', 'trackforums',
                  'descriptionformat', 'suspended'] as $f) {
            $fields[$f] = (string)$user->$f;
        }
        $out[$username] = ['fields' => $fields,
            'context' => $context ? ['depth' => (int)$context->depth,
                'path' => $context->path === '/' . context_system::instance()->id . '/' . $context->id] : null,
            'logs_in' => $login !== false, 'failure' => $failure,
            'complete' => $complete !== false && $complete->username === $username,
            'valid' => core_user::validate($user) === true];
    }
} else if ($op === 'create') {
    foreach (json_decode($argv[2]) as $user) {
        $user->mnethostid = $CFG->mnet_localhost_id;
        $user->confirmed = 1;
        $out[] = user_create_user($user, true, false);
    }
} else if ($op === 'delete') {
    $out['deleted'] = delete_user($DB->get_record('user', ['idnumber' => $argv[2]], '*', MUST_EXIST));
} else if ($op === 'cohorts') {
    foreach ($DB->get_records('cohort', null, 'idnumber') as $cohort) {
        $members = $DB->get_fieldset_sql('SELECT u.idnumber FROM {cohort_members} m
            JOIN {user} u ON u.id = m.userid WHERE m.cohortid = ? ORDER BY u.idnumber', [$cohort->id]);
        $in = array_values(array_filter($members, fn($i) => cohort_is_member($cohort->id,
            $DB->get_field('user', 'id', ['idnumber' => $i]))));
        $out[$cohort->idnumber] = ['name' => $cohort->name, 'members' => $in,
            'context' => context::instance_by_id($cohort->contextid)->contextlevel,
            'listed' => array_key_exists($cohort->id, cohort_get_cohorts($cohort->contextid)['cohorts'])];
    }
} else if ($op === 'groups') {
    $course = $DB->get_record('course', ['shortname' => $argv[2]], '*', MUST_EXIST);
    foreach (groups_get_all_groupings($course->id) as $grouping) {
        $in = groups_get_all_groups($course->id, 0, $grouping->id);
        $names = array_map(fn($g) => $g->name, array_values($in));
        sort($names);
        $out['groupings'][$grouping->idnumber] = ['name' => $grouping->name, 'groups' => $names];
    }
    foreach (groups_get_all_groups($course->id) as $group) {
        $found = groups_get_group_by_idnumber($course->id, $group->idnumber);
        $out['groups'][$group->name] = ['idnumber' => $group->idnumber,
            'by_idnumber' => $found && $found->id == $group->id, 'description' => $group->description];
    }
}
echo json_encode($out), "\n";
