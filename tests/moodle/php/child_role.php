<?php
// Give IDNUMBER the role ROLE in a context below COURSE: an activity of the course (a
// label, made with Moodle's create_module()), as a teacher is given a role in one
// activity. Prints the context level as JSON.
//   php child_role.php COURSE IDNUMBER ROLE
require(__DIR__ . '/lib.php');
require_once($CFG->dirroot . '/course/lib.php');
[$course, $user] = lab_course_user($argv[1], $argv[2]);
$role = $DB->get_field('role', 'id', ['shortname' => $argv[3]], MUST_EXIST);
$context = context_course::instance($course->id);
\core\session\manager::set_user(get_admin());
$module = create_module((object)['modulename' => 'label', 'course' => $course->id, 'section' => 0,
    'visible' => 1, 'introeditor' => ['text' => 'Lab', 'format' => FORMAT_HTML, 'itemid' => 0]]);
$child = context_module::instance($module->coursemodule);
role_assign($role, $user->id, $child->id);
echo json_encode(['contextlevel' => $child->contextlevel]), "\n";
