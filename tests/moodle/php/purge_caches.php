<?php
// Moodle's caches purged (what admin/cli/purge_caches.php does), before the snapshot.
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
purge_all_caches();
echo json_encode(['purged' => true]), "\n";
