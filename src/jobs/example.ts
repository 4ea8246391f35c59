/** What `bh config example` prints: a commented config.ini (schema v3) as bh reads it. */
export const EXAMPLE_CONFIG = `# bh job configuration (Backup Handler's config.ini, schema v3).
# Validate with:  bh config check --config FILE     Run with:  bh run --config FILE
# Values may be written as key = value or key: value; # and ; start comments.
# \${NAME} is replaced by the environment variable NAME (an unset one is an error).

[META]
schema_version = 3

[DEFAULT]
# The directory to back up (absolute path).
source_dir = /srv/data
# full: read every file; incremental: skip files unchanged since the last snapshot;
# differential: skip files unchanged since the last full snapshot. Every snapshot restores on its own.
mode = incremental
# Comma-separated globs left out of the backup.
exclude_patterns = *.tmp, *.log, cache/

[MODES]
# Each enabled destination is a bh repository, created on first use. The source is backed up
# into the first one and the snapshot copied into the others.
local = True
ssh = False
s3 = False
# db = True also dumps the databases of [DATABASE] (MySQL/MariaDB) and [POSTGRES] into
# snapshots of their own (/mysql, /postgres) in the same repositories.
db = False

[BACKUPS]
# Local repositories (absolute paths). The parent folder must exist: bh never creates
# a missing mount point.
backup_dirs = /mnt/backup/bh, /mnt/offsite/bh

[SSH]
# One repository per server: sftp:USERNAME@SERVER:REMOTE_DIR
ssh_servers = backup1.example.com, backup2.example.com:2222
username = backup
password = \${SSH_PASSWORD}
# bh additions: the repository folder on the server (default bh-backups, below the login's home),
# a private key instead of the password, and a known_hosts file (default ~/.ssh/known_hosts).
# remote_dir = /srv/bh
# ssh_key = /etc/bh/id_ed25519
# known_hosts = /etc/bh/known_hosts
# KiB/s, 0 = unlimited
bandwidth_limit = 0

[S3]
# One repository: s3:BUCKET/PREFIX
bucket = my-backups
prefix = bh/host1
region = us-east-1
access_key = \${AWS_ACCESS_KEY_ID}
secret_key = \${AWS_SECRET_ACCESS_KEY}
# bh addition, for S3-compatible servers:
# endpoint = https://s3.example.net
max_bandwidth = 0
max_concurrency = 10

[ENCRYPTION]
# Every bh repository is encrypted (AES-256-GCM); this secret unlocks all of them.
# key_file (32 raw bytes, made by 'bh config init-key PATH') wins over passphrase.
passphrase = \${BACKUP_ENCRYPTION_PASSPHRASE}
# key_file = /etc/bh/backup.key

# With db = True in [MODES]: one file per database, /mysql/<db>.sql. The password never
# reaches a command line (a private 0600 option file). binlog_position records the binary
# log position of each dump, for point-in-time recovery (needs log_bin and RELOAD).
# [DATABASE]
# user = backup
# password = \${MYSQL_BACKUP_PASSWORD}
# database = app, shop
# host = localhost
# port = 3306
# single_transaction = True
# binlog_position = True

# [POSTGRES]
# host = 127.0.0.1
# port = 5432
# user = backup
# password = \${POSTGRES_BACKUP_PASSWORD}
# database = *

[HOOKS]
# Shell commands (/bin/sh -c). A failing pre_backup stops the run (exit 2).
# post_backup sees BH_RUN_STATUS (success, partial, failure), BH_DESTINATIONS_OK,
# BH_DESTINATIONS_FAILED and BH_SNAPSHOT_IDS in its environment.
pre_backup = mysqldump --single-transaction app > /srv/data/app.sql
post_backup = logger -t bh "backup finished: $BH_RUN_STATUS"
# bh addition: seconds before a hook is stopped.
timeout_seconds = 3600

[RETENTION]
# After each complete backup, forget this job's snapshots older than max_age_days (the newest is
# always kept) and beyond the max_count newest, 0 = off; then prune (bh key; False to skip),
# which frees the space of data no snapshot needs any more.
max_age_days = 30
max_count = 0
prune = True

[SCHEDULE]
# For 'bh schedule' (and for staleness in 'bh status'): daily times, HH:MM, local time.
times = 03:00, 15:00

[HEARTBEAT]
# Pinged (HTTP GET) after every fully successful run only: a missed ping is what alerts.
url = https://hc-ping.com/your-check-uuid
timeout = 10
# bh additions (healthchecks.io's protocol): URL/start when a run begins, URL/fail when it fails.
signal_start = False
signal_fail = True

[NOTIFICATIONS]
# Which events are sent: success, failure, stale (default: failure, stale). A channel that
# fails is a warning; it never changes the run's exit code. Test them with 'bh notify test'.
notify_on = failure, stale
# Telegram, with [TELEGRAM] api_token and [USERS] interacted_users here or in bot_config.ini
# beside this file. Only the listed chat ids get messages.
bot = False
# Local mail through the host's own MTA (sendmail -t): needs no DNS and no network.
# Gets failed runs and stale backups only.
local_mail_to = root
# receiver_emails = ops@example.com

# [TELEGRAM]
# api_token = \${TELEGRAM_BOT_TOKEN}
# [USERS]
# interacted_users = 123456789

# [SMTP]
# host = smtp.example.com
# port = 587
# user = bh@example.com
# password = \${SMTP_PASSWORD}
# from_addr = bh@example.com
# to_addrs = ops@example.com
# use_tls = True

# [WEBHOOK]
# The URL is a credential: keep it in the environment. format: slack, discord, teams or json
# (guessed from the host when unset).
# url = \${WEBHOOK_URL}
# format = slack

# [MONITORING]
# Prometheus metrics for node_exporter's textfile collector, rewritten after each run.
# textfile = /var/lib/prometheus/node-exporter/bh.prom

[LOGGING]
# JSON lines, rotated at max_size with keep old files (default: <job>.log in the state directory).
# file = /var/log/bh/nightly.log
max_size = 5M
keep = 5
level = info

[PREFLIGHT]
enabled = False
# When enabled: the run stops (exit 2) unless this is a mounted file system.
expected_mount = /mnt/backup
# A destination is stale in 'bh status' after this many schedule intervals without success.
staleness_factor = 2.0
`;
