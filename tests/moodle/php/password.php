<?php
// A user's login with a password through Moodle's own authenticate_user_login (which,
// from Moodle 4.3, hashes a password stored with an older scheme again as it logs the
// user in), and the scheme of the stored hash before and after (its "$2y$" or "$6$"
// prefix: never the hash).
//   php password.php USERNAME PASSWORD
require(__DIR__ . '/lib.php');
[$username, $password] = array_slice($argv, 1, 2);
$scheme = fn() => preg_replace('/^(\$[^$]+\$).*$/s', '$1',
    $GLOBALS['DB']->get_field('user', 'password', ['username' => $username]));
$before = $scheme();
$failure = 0;
$login = authenticate_user_login($username, $password, false, $failure);
echo json_encode(['before' => $before, 'logs_in' => $login !== false, 'failure' => $failure,
    'after' => $scheme()]), "\n";
