<?php
// postsync's moodle_events step: a run's change journal replayed through Moodle's own
// event classes, with the data Moodle's own API gives them (runner/treatments/events.py
// runs it from the site's directory).
//
//   php moodle_events.php --config=SITE/config.php --feed=FEED --run=RUN_ID
//       --batch=N [--user=ID|USERNAME]
//
// FEED: the journal lines still to replay, one JSON object a line, each with its part's
// name (`part`), checked by postsync. Each batch of N lines: its events triggered, as
// the acting user (--user, by default the site's main administrator), inside one of
// Moodle's delegated transactions with the replay's progress (the last seq of each
// part, in config_plugins: plugin postsync_events, name RUN_ID), so that a replay
// stopped at any point and run again triggers each change's event once. Moodle runs
// its internal observers inside that transaction and the others, the log store among
// them, once it commits; the log store's buffer is then written before the next batch.
// Prints `progress PART SEQ` after each committed batch, `note ...` for a change
// replayed without its row (gone since) and, at the end, `summary JSON`.

define('CLI_SCRIPT', true);

$options = [];
foreach (array_slice($argv, 1) as $arg) {
    if (preg_match('/^--([a-z]+)=(.*)$/s', $arg, $m)) {
        $options[$m[1]] = $m[2];
    }
}
foreach (['config', 'feed', 'run', 'batch'] as $required) {
    if (!isset($options[$required])) {
        fwrite(STDERR, "moodle_events.php: --$required is required\n");
        exit(2);
    }
}
require($options['config']);
require_once($CFG->libdir . '/enrollib.php');
require_once($CFG->dirroot . '/group/lib.php');
require_once($CFG->dirroot . '/cohort/lib.php');

const PLUGIN = 'postsync_events';

/** A change whose event cannot be made (what is missing). */
class replay_skipped extends Exception {
}

/** The replay: the acting user, its progress, what it did. */
class replay {
    public array $progress = [];
    public array $events = [];
    public array $gone = [];
    public array $skipped = [];
    public int $silent = 0;

    public function __construct(public string $run) {
        global $DB;
        $value = $DB->get_field('config_plugins', 'value', ['plugin' => PLUGIN, 'name' => $run]);
        $this->progress = $value ? (array)json_decode($value, true) : [];
    }

    public function done(object $line): bool {
        return $line->seq <= ($this->progress[$line->part] ?? 0);
    }

    /** Save the progress (inside the batch's transaction). */
    public function save(): void {
        global $DB;
        $value = json_encode($this->progress);
        $id = $DB->get_field('config_plugins', 'id', ['plugin' => PLUGIN, 'name' => $this->run]);
        if ($id) {
            $DB->set_field('config_plugins', 'value', $value, ['id' => $id]);
        } else {
            $DB->insert_record('config_plugins', ['plugin' => PLUGIN, 'name' => $this->run, 'value' => $value]);
        }
    }

    public function gone(string $event, object $line, string $what): void {
        $this->gone[$event] = ($this->gone[$event] ?? 0) + 1;
        if (array_sum($this->gone) <= 20) {
            echo "note $event {$line->part}:{$line->seq} (", origin($line), "): $what\n";
        }
    }
}

function course_context(object $line): context {
    $context = context_course::instance((int)$line->courseid, IGNORE_MISSING);
    if (!$context) {
        throw new replay_skipped("course {$line->courseid} is gone");
    }
    return $context;
}

/** Where a journal line comes from: its file's line, or a snapshot's row it missed. */
function origin(object $line): string {
    if ($line->line !== null) {
        return "$line->file line $line->line";
    }
    return $line->file !== null ? "$line->file, missing from the snapshot" : ($line->step ?? 'a post-treatment');
}

function any_context(int $contextid): context {
    $context = context::instance_by_id($contextid, IGNORE_MISSING);
    if (!$context) {
        throw new replay_skipped("context $contextid is gone");
    }
    return $context;
}

/** The user enrolment the line names: by its id, else by (enrolid, userid). */
function user_enrolment(replay $r, string $event, object $line): object {
    global $DB;
    $where = !empty($line->id) ? ['id' => $line->id] : ['enrolid' => $line->enrolid, 'userid' => $line->userid];
    $ue = $DB->get_record('user_enrolments', $where);
    if (!$ue) {
        $r->gone($event, $line, 'the enrolment is gone since: objectid ' . ($line->id ?? 0));
        $ue = (object)['id' => $line->id ?? 0, 'enrolid' => $line->enrolid, 'userid' => $line->userid];
    }
    return $ue;
}

function enrol_name(replay $r, string $event, object $line): string {
    global $DB;
    $name = $DB->get_field('enrol', 'enrol', ['id' => $line->enrolid]);
    if ($name === false) {
        throw new replay_skipped("enrolment instance {$line->enrolid} is gone");
    }
    return $name;
}

/** A group's row: the database's, else what the journal holds. */
function group_row(replay $r, string $event, object $line, int $groupid): object {
    global $DB;
    $group = $DB->get_record('groups', ['id' => $groupid]);
    if (!$group) {
        $r->gone($event, $line, "group $groupid is gone since");
        $group = (object)['id' => $groupid, 'courseid' => $line->courseid];
    }
    return $group;
}

function group_id(object $line, string $table): int {
    global $DB;
    if (!empty($line->id)) {
        return (int)$line->id;
    }
    $where = ['courseid' => $line->courseid, 'name' => $line->name];
    $id = $DB->get_field($table, 'id', $where, IGNORE_MULTIPLE);
    if (!$id) {
        throw new replay_skipped("no id, and no $table named " . json_encode($line->name) . " any more");
    }
    return (int)$id;
}

function user_id(object $line): int {
    global $DB;
    if (!empty($line->id)) {
        return (int)$line->id;
    }
    $id = $DB->get_field('user', 'id', ['username' => $line->user->username, 'mnethostid' => $line->user->mnethostid]);
    if (!$id) {
        // deleted since: delete_user (and postsync) rewrote its username and set its
        // e-mail to the md5 of the username it had
        $ids = $DB->get_fieldset_select('user', 'id', 'deleted = 1 AND mnethostid = ? AND email = ?',
            [$line->user->mnethostid, md5($line->user->username)]);
        $id = count($ids) === 1 ? (int)reset($ids) : 0;
    }
    if (!$id) {
        throw new replay_skipped('no id, and no user ' . json_encode($line->user->username) . ' any more');
    }
    return (int)$id;
}

function cohort_row(replay $r, string $event, object $line, int $cohortid): object {
    global $DB;
    $cohort = $DB->get_record('cohort', ['id' => $cohortid]);
    if (!$cohort) {
        throw new replay_skipped("cohort $cohortid is gone since");
    }
    return $cohort;
}

/** The event of one journal line, made as Moodle's own API makes it (null: none; a
 * list: several, in Moodle's order). */
function make_event(replay $r, object $line): \core\event\base|array|null {
    global $DB;
    $kind = $line->kind;
    switch ($kind) {
        case 'user_enrolment_created':
        case 'user_enrolment_updated':
            $ue = user_enrolment($r, $kind, $line);
            $class = "\\core\\event\\$kind";
            return $class::create(['objectid' => $ue->id, 'courseid' => $line->courseid,
                'context' => course_context($line), 'relateduserid' => $line->userid,
                'other' => ['enrol' => enrol_name($r, $kind, $line)]]);
        case 'user_enrolment_deleted':
            $name = enrol_name($r, $kind, $line);
            // the row as the journal kept it, with what unenrol_user adds
            // (as strings: Moodle's is the database's row)
            $ue = ['id' => (string)$line->id, 'status' => (string)$line->status,
                'enrolid' => (string)$line->enrolid, 'userid' => (string)$line->userid,
                'timestart' => (string)$line->timestart, 'timeend' => (string)$line->timeend,
                'courseid' => (string)$line->courseid, 'enrol' => $name,
                // a deleted user's: as Moodle's unenrolment of each in turn found it
                'lastenrol' => $line->lastenrol ?? !$DB->record_exists_sql('SELECT 1 FROM {user_enrolments} ue
                    JOIN {enrol} e ON e.id = ue.enrolid WHERE ue.userid = ? AND e.courseid = ?',
                    [$line->userid, $line->courseid])];
            return \core\event\user_enrolment_deleted::create(['courseid' => $line->courseid,
                'context' => course_context($line), 'relateduserid' => $line->userid,
                'objectid' => $line->id, 'other' => ['userenrolment' => $ue, 'enrol' => $name]]);
        case 'role_assigned':
        case 'role_unassigned':
            $key = ['contextid' => $line->contextid, 'roleid' => $line->roleid, 'userid' => $line->userid,
                'component' => $line->component, 'itemid' => $line->itemid];
            $ra = $DB->get_record('role_assignments', !empty($line->id) ? ['id' => $line->id] : $key, '*', IGNORE_MULTIPLE);
            if (!$ra) {
                if ($kind === 'role_assigned') {
                    $r->gone($kind, $line, 'the role assignment is gone since');
                }
                // as the database's row would give it (strings), from the journal
                $ra = (object)array_map('strval', ['id' => $line->id ?? 0] + $key);
            }
            $class = "\\core\\event\\$kind";
            $event = $class::create(['context' => any_context($line->contextid), 'objectid' => $line->roleid,
                'relateduserid' => $line->userid,
                // role_assign gives its arguments, role_unassign the database's row
                'other' => $kind === 'role_assigned'
                    ? ['id' => $ra->id, 'component' => $line->component, 'itemid' => $line->itemid]
                    : ['id' => $ra->id, 'component' => $ra->component, 'itemid' => $ra->itemid]]);
            $event->add_record_snapshot('role_assignments', $ra);
            return $event;
        case 'group_member_added':
        case 'group_member_removed':
            $group = group_row($r, $kind, $line, (int)$line->groupid);
            $params = ['context' => course_context($line), 'objectid' => $group->id, 'relateduserid' => $line->userid];
            if ($kind === 'group_member_added') {
                $params['other'] = ['component' => $line->component, 'itemid' => $line->itemid];
            }
            $class = "\\core\\event\\$kind";
            $event = $class::create($params);
            $event->add_record_snapshot('groups', $group);
            return $event;
        case 'group_created':
        case 'group_updated':
            $group = group_row($r, $kind, $line, group_id($line, 'groups'));
            $class = "\\core\\event\\$kind";
            $event = $class::create(['context' => course_context($line), 'objectid' => $group->id]);
            $event->add_record_snapshot('groups', $group);
            return $event;
        case 'group_deleted':
        case 'grouping_deleted':
            $table = $kind === 'group_deleted' ? 'groups' : 'groupings';
            // the row as the journal kept it: the table's columns (not the enrolment
            // key, which the journal never holds)
            $row = (object)array_intersect_key((array)$line, $DB->get_columns($table));
            $class = "\\core\\event\\$kind";
            $event = $class::create(['context' => course_context($line), 'objectid' => $line->id]);
            $event->add_record_snapshot($table, $row);
            return $event;
        case 'grouping_created':
        case 'grouping_updated':
            $class = "\\core\\event\\$kind";
            return $class::create(['context' => course_context($line), 'objectid' => group_id($line, 'groupings')]);
        case 'grouping_group_assigned':
            if (empty($line->groupingid) || empty($line->groupid)) {
                throw new replay_skipped('the grouping or the group has no id in the journal');
            }
            return \core\event\grouping_group_assigned::create(['context' => course_context($line),
                'objectid' => $line->groupingid, 'other' => ['groupid' => $line->groupid]]);
        case 'enrol_instance_created':
            $instance = $DB->get_record('enrol', !empty($line->id) ? ['id' => $line->id]
                : ['courseid' => $line->courseid, 'enrol' => $line->enrol], '*', IGNORE_MULTIPLE);
            if (!$instance) {
                throw new replay_skipped('the enrolment instance is gone since');
            }
            return \core\event\enrol_instance_created::create_from_record($instance);
        case 'cohort_created':
        case 'cohort_updated':
        case 'cohort_deleted':
            if (empty($line->id)) {
                throw new replay_skipped('the cohort has no id in the journal');
            }
            $class = "\\core\\event\\$kind";
            $event = $class::create(['context' => any_context($line->contextid), 'objectid' => $line->id]);
            if ($kind === 'cohort_created') {
                $event->add_record_snapshot('cohort', cohort_row($r, $kind, $line, (int)$line->id));
            } else if ($kind === 'cohort_deleted') {
                $event->add_record_snapshot('cohort', (object)['id' => $line->id,
                    'contextid' => $line->contextid, 'name' => $line->name, 'idnumber' => $line->idnumber]);
            }
            return $event;
        case 'cohort_member_added':
        case 'cohort_member_removed':
            if (empty($line->cohortid)) {
                throw new replay_skipped('the cohort has no id in the journal');
            }
            $cohort = cohort_row($r, $kind, $line, (int)$line->cohortid);
            $class = "\\core\\event\\$kind";
            $event = $class::create(['context' => any_context($cohort->contextid),
                'objectid' => $cohort->id, 'relateduserid' => $line->userid]);
            $event->add_record_snapshot('cohort', $cohort);
            return $event;
        case 'user_created':
        case 'user_updated':
            $id = user_id($line);
            if (!context_user::instance($id, IGNORE_MISSING)) {
                throw new replay_skipped("user $id has no context any more (deleted since)");
            }
            $class = "\\core\\event\\$kind";
            $event = $class::create_from_userid($id);
            if (empty($line->password_updated)) {
                return $event;
            }
            // the line gave a password: Moodle's user_create_user and user_update_user
            // set it (update_internal_user_password) before their own event
            $user = $DB->get_record('user', ['id' => $id], '*', MUST_EXIST);
            return [\core\event\user_password_updated::create_from_user($user), $event];
        case 'user_deleted':
            $id = user_id($line);
            $context = context_user::instance($id, IGNORE_MISSING);
            if (!$context) {
                // the user's context went with the user: Moodle's event names it, the
                // journal does not keep its id
                $r->gone($kind, $line, 'the user\'s context is gone: the event names the system context');
                $context = context_system::instance();
            }
            $u = $line->user;
            $event = \core\event\user_deleted::create(['objectid' => $id, 'relateduserid' => $id,
                'context' => $context, 'other' => ['username' => $u->username, 'email' => $u->email,
                    // as delete_user gives them: the row's values, read as strings
                    'idnumber' => $u->idnumber, 'picture' => (string)$u->picture,
                    'mnethostid' => (string)$u->mnethostid]]);
            $event->add_record_snapshot('user', (object)(['id' => $id] + (array)$u));
            return $event;
        case 'course_left':
            return null;
    }
    throw new replay_skipped("unknown kind $kind");
}

/** What a deletion takes with it (the lines marked `with`, listed before its own line),
 * in the order Moodle's deletion triggers their events: [line, why], why null for a
 * line replayed, '' for one with no event of Moodle's, else why Moodle triggers none
 * though postsync's preview counted one.
 *
 * delete_user (enrol_user_delete) unenrols the user through each enabled plugin, in
 * the site's order of plugins (unenrol_user): the group memberships and the roles the
 * instance made, then at the course's last enrolment the roles left in the course and
 * its sub-contexts and the memberships left in its groups, then user_enrolment_deleted
 * (`lastenrol`); role_unassign_all then unassigns the roles left; an enrolment of a
 * plugin not enabled, the memberships left and the cohort memberships are deleted
 * without an event. cohort_delete_cohort deletes its members without one. */
function cascade(array $with): array {
    global $DB;
    $out = $ues = $ras = $gms = [];
    foreach ($with as $line) {
        if ($line->with !== 'user_deleted') {
            $out[] = [$line, ''];
        } else if ($line->kind === 'user_enrolment_deleted') {
            $ues[] = $line;
        } else if ($line->kind === 'role_unassigned') {
            $ras[] = $line;
        } else if ($line->kind === 'group_member_removed') {
            $gms[] = $line;
        } else {
            $out[] = [$line, ''];
        }
    }
    $take = function (array &$from, callable $match) use (&$out): void {
        foreach ($from as $i => $line) {
            if ($match($line)) {
                $out[] = [$line, null];
                unset($from[$i]);
            }
        }
    };
    $names = array_map(fn($ue) => $DB->get_field('enrol', 'enrol', ['id' => $ue->enrolid]), $ues);
    $left = $ues;  // the enrolments still there
    $unenrolled = [];
    foreach (array_keys(enrol_get_plugins(true)) as $name) {
        $component = "enrol_$name";
        foreach ($ues as $i => $ue) {
            if ($names[$i] !== $name) {
                continue;
            }
            $course = context_course::instance((int)$ue->courseid, IGNORE_MISSING);
            $take($gms, fn($gm) => $gm->component === $component && (int)$gm->itemid === (int)$ue->enrolid);
            $take($ras, fn($ra) => $course && (int)$ra->contextid === (int)$course->id
                && $ra->component === $component && (int)$ra->itemid === (int)$ue->enrolid);
            unset($left[$i]);
            $ue->lastenrol = !array_filter($left, fn($other) => (int)$other->courseid === (int)$ue->courseid);
            if ($ue->lastenrol) {
                $take($ras, fn($ra) => $course && (int)$ra->contextid === (int)$course->id);
                $take($ras, function ($ra) use ($course) {
                    $context = $course ? context::instance_by_id((int)$ra->contextid, IGNORE_MISSING) : false;
                    return $context && in_array($course->id, $context->get_parent_context_ids());
                });
                $take($gms, fn($gm) => (int)$gm->courseid === (int)$ue->courseid);
            }
            $out[] = [$ue, null];
            $unenrolled[(int)$ue->courseid] = true;
        }
    }
    foreach ($left as $i => $ue) {
        $out[] = [$ue, $names[$i] === false ? null  // the instance is gone: make_event says so
            : "enrol_{$names[$i]} is not enabled on the site: Moodle deletes the enrolment without an event"];
    }
    usort($ras, fn($a, $b) => (int)$a->id <=> (int)$b->id);
    $take($ras, fn($ra) => true);
    $courses = array_flip(array_map(fn($ue) => (int)$ue->courseid, $ues));
    foreach ($gms as $gm) {
        $out[] = [$gm, isset($courses[(int)$gm->courseid]) ? 'the course kept an enrolment no enabled plugin'
            . ' unenrols: Moodle deletes the membership without an event' : ''];
    }
    return $out;
}

/** One journal line's events, triggered (a line with none counted as such). */
function replay_line(replay $r, object $line): void {
    try {
        $made = make_event($r, $line);
    } catch (replay_skipped | coding_exception $e) {
        skipped($r, $line, $e->getMessage());
        return;
    }
    foreach (is_array($made) ? $made : array_filter([$made]) as $event) {
        $event->trigger();
        $name = substr(strrchr(get_class($event), '\\'), 1);
        $r->events[$name] = ($r->events[$name] ?? 0) + 1;
    }
    if ($made === null) {
        $r->silent++;
    }
}

function skipped(replay $r, object $line, string $why): void {
    foreach (empty($line->password_updated) ? [$line->kind] : ['user_password_updated', $line->kind] as $name) {
        $r->skipped[$name] = ($r->skipped[$name] ?? 0) + 1;
    }
    if (array_sum($r->skipped) <= 20) {
        echo "note {$line->kind} {$line->part}:{$line->seq} (", origin($line), "): not replayed: ",
            str_replace("\n", ' ', $why), "\n";
    }
}

/** The lines a deletion took with it, replayed as Moodle's deletion triggers them. */
function replay_cascade(replay $r, array $with): void {
    foreach (cascade($with) as [$line, $why]) {
        if ($why === null) {
            replay_line($r, $line);
        } else if ($why === '') {
            $r->silent++;
        } else {
            skipped($r, $line, $why);
        }
    }
}

function flush_log_stores(): void {
    foreach (get_log_manager()->get_readers() as $store) {
        if (method_exists($store, 'flush')) {
            $store->flush();
        }
    }
}

/** One batch: its events and the progress in one transaction; the logs written after. */
function replay_batch(replay $r, array $batch): void {
    global $DB;
    $transaction = $DB->start_delegated_transaction();
    $with = [];  // what the deletion to come takes with it (a batch holds them all)
    foreach ($batch as $line) {
        if (isset($line->with)) {
            $with[] = $line;
        } else {
            replay_cascade($r, $with);
            $with = [];
            replay_line($r, $line);
        }
        $r->progress[$line->part] = $line->seq;
    }
    replay_cascade($r, $with);
    $r->save();
    $transaction->allow_commit(); // then Moodle runs the other observers: the log store's
    flush_log_stores();
    $parts = [];
    foreach ($batch as $line) {
        $parts[$line->part] = $line->seq;
    }
    foreach ($parts as $part => $seq) {
        echo "progress $part $seq\n";
    }
    flush();
}

// the acting user: Moodle's API logs the changes as $USER's
if (!empty($options['user'])) {
    $field = ctype_digit($options['user']) ? 'id' : 'username';
    $where = [$field => $options['user'], 'deleted' => 0];
    if ($field === 'username') {
        $where['mnethostid'] = $CFG->mnet_localhost_id;
    }
    $actor = $DB->get_record('user', $where);
} else {
    $actor = get_admin();
}
if (!$actor) {
    fwrite(STDERR, 'moodle_events.php: no user ' . ($options['user'] ?? 'admin') . " on this site\n");
    exit(3);
}
\core\session\manager::set_user($actor);

$replay = new replay($options['run']);
$size = max(1, (int)$options['batch']);
$feed = fopen($options['feed'], 'r');
if ($feed === false) {
    fwrite(STDERR, "moodle_events.php: cannot read {$options['feed']}\n");
    exit(2);
}
$batch = [];
$before = 0;
while (($raw = fgets($feed)) !== false) {
    $line = json_decode($raw);
    if (!is_object($line) || !isset($line->part, $line->seq, $line->kind)) {
        fwrite(STDERR, "moodle_events.php: a feed line that is not a journal line\n");
        exit(2);
    }
    if ($replay->done($line)) {
        $before++;  // replayed by a replay that was stopped after its batch committed
        continue;
    }
    $batch[] = $line;
    // a deletion's batch holds the lines it takes with it, listed before it
    if (count($batch) >= $size && !isset($line->with)) {
        replay_batch($replay, $batch);
        $batch = [];
    }
}
if ($batch) {
    replay_batch($replay, $batch);
}
echo 'summary ', json_encode(['events' => $replay->events, 'gone' => $replay->gone,
    'skipped' => $replay->skipped, 'before' => $before, 'silent' => $replay->silent,
    'user' => (int)$actor->id]), "\n";
