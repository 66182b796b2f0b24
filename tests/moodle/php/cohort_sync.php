<?php
// A cohort sync made and run through Moodle's own API:
//   php cohort_sync.php setup COURSE IDNUMBER   cohort "Lab cohort" with that user, an
//       enrol_cohort instance in the course that creates its group; and a second
//       instance, of the empty cohort "Lab empty", with its own (empty) group
//   php cohort_sync.php sync COURSE             enrol_cohort_sync on the course
require(__DIR__ . '/lib.php');
require_once($CFG->dirroot . '/cohort/lib.php');
require_once($CFG->dirroot . '/enrol/cohort/locallib.php');
\core\session\manager::set_user(get_admin());
[$op, $short] = array_slice($argv, 1, 2);
$course = $DB->get_record('course', ['shortname' => $short], '*', MUST_EXIST);
$plugin = enrol_get_plugin('cohort');
$student = $DB->get_field('role', 'id', ['shortname' => 'student'], MUST_EXIST);
if ($op === 'setup') {
    $user = $DB->get_record('user', ['idnumber' => $argv[3]], '*', MUST_EXIST);
    $system = context_system::instance()->id;
    $full = cohort_add_cohort((object)['contextid' => $system, 'name' => 'Lab cohort', 'idnumber' => 'LABC']);
    cohort_add_member($full, $user->id);
    $empty = cohort_add_cohort((object)['contextid' => $system, 'name' => 'Lab empty', 'idnumber' => 'LABE']);
    foreach ([$full, $empty] as $cohort) {
        $plugin->add_instance($course, ['customint1' => $cohort, 'roleid' => $student,
            'customint2' => COHORT_CREATE_GROUP]);
    }
}
enrol_cohort_sync(new null_progress_trace(), $course->id);
echo json_encode(['done' => $op]), "\n";
