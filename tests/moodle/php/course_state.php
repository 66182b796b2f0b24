<?php
// A session already open on a course page, at its next request: does it keep the course
// state it had? (core_courseformat\base::session_cache: the key the course page's
// JavaScript keeps its copy of the course state under, held in the session's cache; a
// new key makes the page load the course state again.)
//   php course_state.php open COURSE IDNUMBER FILE   the user's session opens the course
//       page: its key made; the session's cache saved in FILE, as PHP keeps a session
//   php course_state.php next COURSE IDNUMBER FILE   that session's next request (its
//       cache read back from FILE): whether its key is still the one it had and still
//       valid for the course (its cache revision, course.cacherev, unchanged)
require(__DIR__ . '/lib.php');
[$op, $shortname, $idnumber, $file] = array_slice($argv, 1, 4);
if ($op === 'next') {
    $saved = unserialize(file_get_contents($file) ?: throw new coding_exception("cannot read $file"));
    $SESSION->cachestore_session = $saved['store'];
}
[$course, $user] = lab_course_user($shortname, $idnumber);
\core\session\manager::set_user($user);
if ($op === 'open') {
    $key = \core_courseformat\base::session_cache($course);
    $session = serialize(['key' => $key, 'store' => $SESSION->cachestore_session]);
    if (file_put_contents($file, $session) === false) {
        throw new coding_exception("cannot write $file");
    }
    echo json_encode(['opened' => true]), "\n";
} else {
    // what session_cache() finds before it makes a new key, if it must
    $held = cache::make('core', 'courseeditorstate')->get($course->id);
    $valid = is_string($held) && explode('_', $held)[0] == $course->cacherev;
    echo json_encode(['kept' => $held === $saved['key'] && $valid]), "\n";
}
