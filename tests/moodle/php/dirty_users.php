<?php
// The users Moodle counts as dirty (their open sessions reload their access data at the
// next request): the accesslib/dirtyusers cache flags set since SINCE (a Unix time) and
// not expired, read with Moodle's own get_cache_flags; as user idnumbers, with the
// flags' expiry minus their time of change.
//   php dirty_users.php SINCE
require(__DIR__ . '/lib.php');
$flags = get_cache_flags('accesslib/dirtyusers', (int)$argv[1]);
$users = [];
foreach ($flags as $id => $value) {
    $idnumber = $DB->get_field('user', 'idnumber', ['id' => $id]);
    $users[$idnumber] = (int)$value;
}
ksort($users);
$spans = $DB->get_fieldset_sql("SELECT DISTINCT expiry - timemodified FROM {cache_flags}
    WHERE flagtype = 'accesslib/dirtyusers' AND timemodified >= ?", [(int)$argv[1]]);
echo json_encode(['dirty' => (object)$users, 'lifetime' => array_map('intval', $spans)]), "\n";
