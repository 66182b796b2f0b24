<?php
// The changes of the events checks, made through Moodle's own API (as the site's main
// administrator, whom the events step acts as by default), for comparison:
//   php moodle_events_twin.php meta COURSE METACOURSE   an enrol_meta instance in METACOURSE
//                                                       linked to COURSE (plugin enabled)
//   php moodle_events_twin.php enrolments               S001 in MATH101 as student with group
//       G1; S002 student; S002's role shifted to editingteacher; S009 unenrolled
//   php moodle_events_twin.php people                   lab1 created, suspended with a new
//       password, lab2 created and deleted (both with a password), lab1 added to cohort LABC
//   php moodle_events_twin.php grouping COURSE GROUP NAME  a grouping NAME in COURSE holding
//                                                       its group GROUP
//   php moodle_events_twin.php ungroup COURSE GROUP NAME   the group deleted, then the
//       grouping (groups_delete_group, groups_delete_grouping)
//   php moodle_events_twin.php cohorts                  cohorts LABO ("Old cohort") and LABX
//       ("Gone cohort", member S004), in the system context
//   php moodle_events_twin.php doomed                   lab3 created, enrolled in MATH101 as
//       student (manual) in its group G1, manager in the first category, member of cohort
//       LABD ("Lab doomed"); cohort LABG ("Lab gone") with member S005
//   php moodle_events_twin.php delete                   lab3 deleted (delete_user), then
//       LABG (cohort_delete_cohort)
//   php moodle_events_twin.php updates                  S009's enrolment in MATH101 suspended,
//       S010's in PHYS102 given dates (2030-01-01 to 2030-06-30 UTC); in PHYS102 a group
//       "New group" (C102-NEW) and a grouping "New set" (C102-SET) created, "Spare"
//       renamed "Renamed" (C102-SPARE2); cohort LABN ("New cohort") created, LABO renamed
//       "Renamed cohort" with a description and moved into category 1, LABX deleted
require(__DIR__ . '/lib.php');
require_once($CFG->dirroot . '/user/lib.php');
require_once($CFG->dirroot . '/cohort/lib.php');
\core\session\manager::set_user(get_admin());
$op = $argv[1];
if ($op === 'meta') {
    $enabled = explode(',', $CFG->enrol_plugins_enabled);
    foreach (['meta', 'cohort'] as $name) {
        if (!in_array($name, $enabled)) { $enabled[] = $name; }
    }
    set_config('enrol_plugins_enabled', implode(',', $enabled));
    $parent = $DB->get_record('course', ['shortname' => $argv[2]], '*', MUST_EXIST);
    $meta = $DB->get_record('course', ['shortname' => $argv[3]], '*', MUST_EXIST);
    enrol_get_plugin('meta')->add_instance($meta, ['customint1' => $parent->id]);
} else if ($op === 'enrolments') {
    $course = $DB->get_record('course', ['shortname' => 'MATH101'], '*', MUST_EXIST);
    $context = context_course::instance($course->id);
    $instance = $DB->get_record('enrol', ['courseid' => $course->id, 'enrol' => 'manual'], '*', MUST_EXIST);
    $manual = enrol_get_plugin('manual');
    $role = fn($s) => $DB->get_field('role', 'id', ['shortname' => $s], MUST_EXIST);
    $user = fn($i) => $DB->get_field('user', 'id', ['idnumber' => $i], MUST_EXIST);
    $manual->enrol_user($instance, $user('S001'), $role('student'));
    groups_add_member($DB->get_field('groups', 'id', ['courseid' => $course->id, 'name' => 'G1']), $user('S001'));
    $manual->enrol_user($instance, $user('S002'), $role('student'));
    role_unassign($role('student'), $user('S002'), $context->id);
    role_assign($role('editingteacher'), $user('S002'), $context->id);
    $manual->unenrol_user($instance, $user('S009'));
} else if ($op === 'people') {
    $base = ['auth' => 'manual', 'confirmed' => 1, 'mnethostid' => $CFG->mnet_localhost_id,
        'firstname' => 'Lab', 'country' => 'FR', 'city' => 'Lyon', 'password' => 'Lab-pass-123!'];
    $one = user_create_user((object)($base + ['username' => 'lab1', 'idnumber' => 'L001', 'lastname' => 'One', 'email' => 'lab1@example.com']));
    $two = user_create_user((object)($base + ['username' => 'lab2', 'idnumber' => 'L002', 'lastname' => 'Two', 'email' => 'lab2@example.com']));
    user_update_user((object)['id' => $one, 'suspended' => 1, 'password' => 'Lab-pass-456!']);
    delete_user($DB->get_record('user', ['id' => $two]));
    cohort_add_member($DB->get_field('cohort', 'id', ['idnumber' => 'LABC'], MUST_EXIST), $one);
} else if ($op === 'cohorts') {
    $system = context_system::instance()->id;
    cohort_add_cohort((object)['contextid' => $system, 'name' => 'Old cohort', 'idnumber' => 'LABO']);
    $gone = cohort_add_cohort((object)['contextid' => $system, 'name' => 'Gone cohort', 'idnumber' => 'LABX']);
    cohort_add_member($gone, $DB->get_field('user', 'id', ['idnumber' => 'S004'], MUST_EXIST));
} else if ($op === 'doomed') {
    require_once($CFG->dirroot . '/group/lib.php');
    $course = $DB->get_record('course', ['shortname' => 'MATH101'], '*', MUST_EXIST);
    $instance = $DB->get_record('enrol', ['courseid' => $course->id, 'enrol' => 'manual'], '*', MUST_EXIST);
    $role = fn($s) => $DB->get_field('role', 'id', ['shortname' => $s], MUST_EXIST);
    $three = user_create_user((object)['auth' => 'manual', 'confirmed' => 1, 'mnethostid' => $CFG->mnet_localhost_id,
        'username' => 'lab3', 'idnumber' => 'L003', 'firstname' => 'Lab', 'lastname' => 'Three',
        'email' => 'lab3@example.com', 'password' => 'Lab-pass-123!']);
    enrol_get_plugin('manual')->enrol_user($instance, $three, $role('student'));
    groups_add_member($DB->get_field('groups', 'id', ['courseid' => $course->id, 'name' => 'G1']), $three);
    role_assign($role('manager'), $three, context_coursecat::instance(1)->id);
    $system = context_system::instance()->id;
    cohort_add_member(cohort_add_cohort((object)['contextid' => $system, 'name' => 'Lab doomed', 'idnumber' => 'LABD']), $three);
    cohort_add_member(cohort_add_cohort((object)['contextid' => $system, 'name' => 'Lab gone', 'idnumber' => 'LABG']),
        $DB->get_field('user', 'id', ['idnumber' => 'S005'], MUST_EXIST));
} else if ($op === 'delete') {
    delete_user($DB->get_record('user', ['username' => 'lab3'], '*', MUST_EXIST));
    cohort_delete_cohort($DB->get_record('cohort', ['idnumber' => 'LABG'], '*', MUST_EXIST));
} else if ($op === 'updates') {
    require_once($CFG->dirroot . '/group/lib.php');
    $manual = enrol_get_plugin('manual');
    $course = fn($s) => $DB->get_record('course', ['shortname' => $s], '*', MUST_EXIST);
    $instance = fn($c) => $DB->get_record('enrol', ['courseid' => $c->id, 'enrol' => 'manual'], '*', MUST_EXIST);
    $user = fn($i) => $DB->get_field('user', 'id', ['idnumber' => $i], MUST_EXIST);
    $manual->update_user_enrol($instance($course('MATH101')), $user('S009'), ENROL_USER_SUSPENDED);
    $manual->update_user_enrol($instance($course('PHYS102')), $user('S010'), null, 1893456000, 1909008000);
    $phys = $course('PHYS102');
    groups_create_group((object)['courseid' => $phys->id, 'name' => 'New group', 'idnumber' => 'C102-NEW']);
    groups_create_grouping((object)['courseid' => $phys->id, 'name' => 'New set', 'idnumber' => 'C102-SET']);
    $spare = $DB->get_record('groups', ['courseid' => $phys->id, 'idnumber' => 'C102-SPARE'], '*', MUST_EXIST);
    groups_update_group((object)['id' => $spare->id, 'courseid' => $phys->id, 'name' => 'Renamed', 'idnumber' => 'C102-SPARE2']);
    cohort_add_cohort((object)['contextid' => context_system::instance()->id, 'name' => 'New cohort', 'idnumber' => 'LABN']);
    $old = $DB->get_record('cohort', ['idnumber' => 'LABO'], '*', MUST_EXIST);
    cohort_update_cohort((object)['id' => $old->id, 'contextid' => context_coursecat::instance(1)->id, 'name' => 'Renamed cohort',
        'description' => 'New description']);
    cohort_delete_cohort($DB->get_record('cohort', ['idnumber' => 'LABX'], '*', MUST_EXIST));
} else if ($op === 'grouping' || $op === 'ungroup') {
    require_once($CFG->dirroot . '/group/lib.php');
    $course = $DB->get_record('course', ['shortname' => $argv[2]], '*', MUST_EXIST);
    $group = $DB->get_record('groups', ['courseid' => $course->id, 'name' => $argv[3]], '*', MUST_EXIST);
    if ($op === 'grouping') {
        $id = groups_create_grouping((object)['courseid' => $course->id, 'name' => $argv[4]]);
        groups_assign_grouping($id, $group->id);
    } else {
        groups_delete_group($group);
        groups_delete_grouping($DB->get_record('groupings', ['courseid' => $course->id, 'name' => $argv[4]], '*', MUST_EXIST));
    }
}
echo json_encode(['done' => $op]), "\n";
