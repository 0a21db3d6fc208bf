#!/usr/bin/env bash
# Copy the pictures of docs/anvandarguide.md from the browser tests'
# screenshots into docs/bilder/, under stable names, so the user guide shows
# the pages as they are today. Run it after the browser tests:
#
#   cargo test --test it browser -- --test-threads 2      # and passkeys, passwordless
#   bash docs/screenshots.sh
#
# The screenshots are read from $SHOTS, else $CARGO_TARGET_DIR/browser-screenshots,
# else target/browser-screenshots. Nothing is copied unless every picture is
# there: a missing one is named with the test that takes it.
set -euo pipefail

docs=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$docs")
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
shots=${SHOTS:-$target/browser-screenshots}
out=$docs/bilder

# name in docs/bilder/   screenshot (test directory/file)   the test that takes it
pictures='
01-valj-grupp.png               each_realm_inside_staff/01-landningssida.png                                              browser_realms::each_realm_sees_its_own_services_from_inside
02-logga-in-pa-jobbet.png       the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator/01-login-pa-jobbet.png   browser::the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator
03-dina-tjanster.png            each_realm_inside_staff/02-portal-alice-inne.png                                          browser_realms::each_realm_sees_its_own_services_from_inside
04-mina-sms-nummer.png          the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator/03-mina-sms-nummer.png   browser::the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator
05-bekrafta-numret.png          the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator/04-bekrafta-numret.png   browser::the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator
06-numret-sparat.png            the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator/05-mina-sms-nummer-sparat.png   browser::the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator
07-authenticator-steg-1.png     the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator/06-authenticator-steg-1.png   browser::the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator
08-authenticator-steg-2-och-3.png the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator/07-authenticator-steg-2.png   browser::the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator
09-mina-installningar.png       the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator/08-mina-installningar-jobbtelefonen.png   browser::the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator
10-registrera-nyckel.png        register_a_key_at_work_then_log_in_from_home_with_it/03-registrera-nyckel.png             passkeys::register_a_key_at_work_then_log_in_from_home_with_it
11-logga-in-hemifran.png        the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator/09-login-hemifran.png   browser::the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator
12-valj-nummer.png              sms_with_two_numbers_lets_the_user_choose/05-valj-nummer.png                              browser::sms_with_two_numbers_lets_the_user_choose
13-sms-kod.png                  sms_with_two_numbers_lets_the_user_choose/06-sms-kod.png                                  browser::sms_with_two_numbers_lets_the_user_choose
14-kod-fran-authenticator.png   the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator/10-kod-fran-authenticator.png   browser::the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator
15-logga-in-med-nyckel.png      register_a_key_at_work_then_log_in_from_home_with_it/05-logga-in-med-nyckel.png           passkeys::register_a_key_at_work_then_log_in_from_home_with_it
16-bara-fran-kommunens-natverk.png self_service_is_refused_from_home/03-bara-fran-kommunens-natverk.png                   browser::self_service_is_refused_from_home
17-logga-in-utan-losenord.png   with_her_key_alone_alice_logs_in_from_home_without_a_password/04-logga-in-utan-losenord.png   passwordless::with_her_key_alone_alice_logs_in_from_home_without_a_password
18-nyckel-utan-losenord.png     with_her_key_alone_alice_logs_in_from_home_without_a_password/05-logga-in-med-nyckel-utan-losenord.png   passwordless::with_her_key_alone_alice_logs_in_from_home_without_a_password
'

missing=0
while read -r name shot test; do
    [ -n "$name" ] || continue
    if [ ! -s "$shots/$shot" ]; then
        echo "missing: $shots/$shot" >&2
        echo "  taken by: cargo test --test it $test -- --exact --test-threads 2" >&2
        missing=$((missing + 1))
    fi
done <<<"$pictures"
if [ "$missing" -gt 0 ]; then
    echo "docs/screenshots.sh: $missing picture(s) missing; nothing copied" >&2
    exit 1
fi

mkdir -p "$out"
total=0
while read -r name shot test; do
    [ -n "$name" ] || continue
    cp "$shots/$shot" "$out/$name"
    total=$((total + $(stat -c %s "$out/$name")))
done <<<"$pictures"

# A picture the guide no longer lists would stay in git unseen: say so.
for f in "$out"/*.png; do
    grep -q "^$(basename "$f") " <<<"$pictures" || echo "not in the list (remove it?): $f" >&2
done
echo "docs/bilder: $(grep -c '\.png ' <<<"$pictures") pictures, $((total / 1024)) KiB, from $shots"
