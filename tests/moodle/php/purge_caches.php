<?php
// Moodle's caches purged, as its own admin/cli/purge_caches.php does (purge_all_caches).
define('CLI_SCRIPT', true);
require(getenv('MOODLE_LAB') . '/moodle/config.php');
purge_all_caches();
echo json_encode(['purged' => true]), "\n";
