# shellcheck shell=sh
# Shared by every host script: bars_receiver/scripts.py puts its top-level lines, and the functions
# a script calls, in front of each one. So each function is "name() {" to a line "}" alone, its
# body indented, with its comment on the lines just above it.
#
# An endpoint directory holds generations: archive/<N>/ (key.pem, key.pass, csr.pem and, once a
# certificate is installed, cert.pem, chain.pem, ca.pem). "live" and "next" are symlinks to one
# generation each, replaced only by rename(2); key.pem, cert.pem... at the top are symlinks
# through live/. Secrets are staged only in .staging/ (0700), which a script clears before use.

BARS_TEST_STOP=${BARS_TEST_STOP:-/run/bars-receiver-test-stop}
COMPAT_NAMES="key.pem key.pass csr.pem cert.pem chain.pem ca.pem"
# A file's identity for the public-key cache: device, inode, mtime, ctime (to the nanosecond) and
# size. ctime cannot be set back, so a key rewritten in place never matches its old entry.
FILE_ID='%d-%i-%.9Y-%.9Z-%s'
LEGACY_STAGED=".cert.pem.new .chain.pem.new .ca.pem.new .csr.pem.new .key.pem.new .key.pass.new .pfx.inputs.new"

fail() {
  echo "$*" >&2
  exit 1
}

# Test-only hook: a file the lab test plants, holding "<script>:<k>", stops this script after its
# k-th step as a crash would (SIGKILL: no trap runs, nothing is tidied).
bars_step=0
step() {
  bars_step=$((bars_step + 1))
  if [ -f "$BARS_TEST_STOP" ] && [ "$(cat "$BARS_TEST_STOP")" = "${BARS_SCRIPT:-}:$bars_step" ]; then
    echo "test hook: ${BARS_SCRIPT:-}: stopped after step $bars_step ($1)" >&2
    kill -KILL $$
  fi
}

# Directory $1's .staging/ removed, if there is one (no process when there is none).
drop_staging() {
  if [ -e "$1/.staging" ] || [ -L "$1/.staging" ]; then rm -rf "$1/.staging"; fi
}

# An empty root-only .staging/ in directory $1; anything an earlier run left there goes first.
stage_clear() {
  drop_staging "$1"
  mkdir -m 700 "$1/.staging"
}

# An empty .staging/gen in directory $1 (made 0700 if missing), where uploads and new files go;
# with a role $2 (live or next), the key, key.pass and CSR of the generation it names are
# hard-linked in (never copied), so a certificate can be added beside them.
stage_generation() {
  drop_staging "$1"
  # Each directory named is made 0700 (-m applies to every one named, not only the deepest).
  # shellcheck disable=SC2174
  mkdir -p -m 700 "$1" "$1/.staging" "$1/.staging/gen"
  [ -n "${2:-}" ] || return 0
  [ -f "$1/$2/key.pem" ] || fail "$1/$2/key.pem: there is no such key; nothing was switched"
  sg_dir=$1 sg_role=$2
  set --
  for f in key.pem key.pass csr.pem; do
    if [ -f "$sg_dir/$sg_role/$f" ]; then set -- "$@" "$sg_dir/$sg_role/$f"; fi
  done
  ln "$@" "$sg_dir/.staging/gen/" # one ln for all: hard links named as their sources
}

# rename(2) a new symlink $1/$2 -> $3 over whatever is there; with nothing there, symlink(2)
# makes it in place (as atomic, and one process less).
point() {
  if [ ! -e "$1/$2" ] && [ ! -L "$1/$2" ]; then
    ln -s "$3" "$1/$2"
    return 0
  fi
  ln -sfn "$3" "$1/.staging/.link.$2"
  mv -T "$1/.staging/.link.$2" "$1/$2"
}

# Each link $1/<name> -> live/<name> for the names $2... put in place. When none of them is there
# yet (a new key, a first PKCS#12), one ln makes them, each by symlink(2). Otherwise each is
# renamed over whatever is there, as point() does: made together in $1/.staging/links (which
# must exist) by one ln and moved by one mv, not two processes per link.
point_live() {
  pl_dir=$1 pl_any=''
  shift
  for pl_f in "$@"; do
    if [ -e "$pl_dir/$pl_f" ] || [ -L "$pl_dir/$pl_f" ]; then pl_any=yes; fi
    set -- "$@" "live/$pl_f"
    shift
  done
  if [ -z "$pl_any" ]; then
    ln -s "$@" "$pl_dir/"
    return 0
  fi
  [ -d "$pl_dir/.staging/links" ] || mkdir "$pl_dir/.staging/links"
  ln -s "$@" "$pl_dir/.staging/links/"
  for pl_f in "$@"; do set -- "$@" "$pl_dir/.staging/links/${pl_f#live/}"; shift; done
  mv -f "$@" "$pl_dir/"
}

# Every compatibility link of endpoint directory $1 (key.pem... -> live/<name>) put in place.
point_compat() {
  # shellcheck disable=SC2086 # COMPAT_NAMES is a list of plain names
  point_live "$1" $COMPAT_NAMES
}

# The number for a new generation: one more than the highest in $1/archive.
next_number() {
  n=0
  for g in "$1"/archive/*/; do
    g=${g%/}
    g=${g##*/}
    case $g in '' | *[!0-9]*) continue ;; esac
    [ "$g" -gt "$n" ] && n=$g
  done
  echo $((n + 1))
}

# The number of the generation a pointer names (empty when absent or not one of ours).
pointer_number() {
  pointer_of "$1"
  [ -z "$pn" ] || echo "$pn"
}

# pointer_number into $pn, without the subshell a $(...) costs (resolve runs per endpoint).
pointer_of() {
  pn=
  [ -L "$1" ] || return 0
  pn_t=$(readlink "$1")
  case $pn_t in archive/*) pn_t=${pn_t#archive/} ;; *) return 0 ;; esac
  case $pn_t in '' | *[!0-9]*) return 0 ;; esac
  [ -d "${1%/*}/archive/$pn_t" ] && pn=$pn_t
  return 0
}

# The newest key.pass kept by the previous layout's renewal archive (archive/<UTC time>-<hash>/).
legacy_archived_pass() {
  latest=
  for p in "$1"/archive/*T*Z-*/key.pass; do
    [ -f "$p" ] && latest=$p
  done
  echo "$latest"
}

public_key() {
  openssl pkey -in "$1" -passin "$2" -pubout 2>/dev/null
}

# Key $1's public half and the -passin that opens it, into $public and $passin: from the
# public-key cache $2 when it has an entry for this key file (cached_entry), else by openssl,
# trying each passphrase file $3... that exists and then none (the first that opens it: one
# openssl that also reads the public half), and the answer is cached. Fails when nothing opens
# the key.
open_key() {
  ok_key=$1 ok_cache=$2
  shift 2
  if [ -n "$ok_cache" ] && ok_id=$(stat -L -c "$FILE_ID" "$ok_key" 2>/dev/null) &&
    cached_entry "$ok_cache/$ok_id" "$@"; then
    return 0
  fi
  for ok_pass in "$@" ""; do
    if [ -n "$ok_pass" ]; then
      [ -f "$ok_pass" ] || continue
      passin="file:$ok_pass"
    else
      passin=pass:
    fi
    if public=$(public_key "$ok_key" "$passin"); then
      [ -z "$ok_cache" ] || remember_public "$ok_cache" "$ok_key" "$passin" "$public"
      return 0
    fi
  done
  return 1
}

# Public-key cache entry $1 for a key whose passphrase files are $2...: sets $public, $passin and
# $pass_meta (mode owner group of the passphrase file, empty for none) when the first of those
# files that exists is the very file the entry was written with (the same $FILE_ID, whatever its
# path), or when neither had one. Otherwise fails, and openssl reads the key again. $passin names
# the file as given here.
cached_entry() {
  ce_entry=$1
  shift
  [ -f "$ce_entry" ] || return 1
  { read -r ce_passin && read -r ce_pass_id; } < "$ce_entry" || return 1
  ce_first=
  for ce_pass in "$@"; do
    if [ -n "$ce_pass" ] && [ -f "$ce_pass" ]; then ce_first=$ce_pass; break; fi
  done
  pass_meta=
  case $ce_passin in
    pass:) [ -z "$ce_first" ] || return 1 ;;
    file:*)
      [ -n "$ce_first" ] || return 1
      pass_meta=$(stat -L -c "%a %u %g $FILE_ID" "$ce_first") || return 1
      [ "${pass_meta##* }" = "$ce_pass_id" ] || return 1
      pass_meta=${pass_meta% *} ;;
    *) return 1 ;;
  esac
  public=
  { read -r _ && read -r _ && while IFS= read -r ce_line; do public="$public${public:+
}$ce_line"; done; } < "$ce_entry"
  [ -n "$public" ] || return 1
  passin=pass:
  [ -z "$ce_first" ] || passin=file:$ce_first
}

# The SHA-256 of standard input, in hex (sha256sum without its trailing " -", and no cut).
sha256_hex() {
  sh_sum=$(sha256sum)
  printf '%s\n' "${sh_sum%% *}"
}

# Public key PEM $1 in DER: what openssl pkey -pubout -outform DER writes, with no openssl (the
# PEM body is that DER in base64).
public_der() {
  printf '%s\n' "$1" | {
    pd_body=''
    while IFS= read -r pd_line; do
      case $pd_line in -----*) ;; *) pd_body=$pd_body$pd_line ;; esac
    done
    printf '%s' "$pd_body"
  } | base64 -d
}

# Keep key $2's public half $4 (opened with -passin $3) in the public-key cache $1, in the entry
# endpoint_files.sh looks up: named by the key file's identity ($FILE_ID), with the passphrase
# file's identity beside it. Best effort: a missing entry only costs an openssl.
remember_public() {
  rp_id=$(stat -L -c "$FILE_ID" "$2") || return 0
  rp_pass=
  case $3 in file:*) rp_pass=$(stat -L -c "$FILE_ID" "${3#file:}") || return 0 ;; esac
  [ -d "$1" ] || (umask 077 && mkdir -p "$1") 2>/dev/null || return 0
  (umask 077 && printf '%s\n%s\n%s\n' "$3" "$rp_pass" "$4" > "$1/$rp_id.$$" &&
    mv -f "$1/$rp_id.$$" "$1/$rp_id") 2>/dev/null || rm -f "$1/$rp_id.$$"
}

# The public half $4 of generation $3's key in endpoint directory $2 kept in the public-key cache
# $1 (remember_public), with the generation's key.pass if it has one; with $4 empty, openssl reads
# it first.
remember_generation() {
  rg_key=$2/archive/$3/key.pem rg_passin=pass: rg_public=$4
  if [ -f "$2/archive/$3/key.pass" ]; then rg_passin=file:$2/archive/$3/key.pass; fi
  [ -n "$rg_public" ] || rg_public=$(public_key "$rg_key" "$rg_passin") || return 0
  remember_public "$1" "$rg_key" "$rg_passin" "$rg_public"
}

# The newest generation of $1 holding a key; with $2 = complete, only those with a certificate.
newest_generation() {
  newest_of "$@"
  [ "$newest" -gt 0 ] && echo "$newest"
  return 0
}

# newest_generation into $newest (0 for none), without the subshell a $(...) costs.
newest_of() {
  newest=0
  for ng_g in "$1"/archive/*/; do
    ng_g=${ng_g%/}
    ng_n=${ng_g##*/}
    case $ng_n in '' | *[!0-9]*) continue ;; esac
    [ -f "$ng_g/key.pem" ] || continue
    if [ "${2:-}" = complete ] && [ ! -f "$ng_g/chain.pem" ]; then continue; fi
    [ "$ng_n" -gt "$newest" ] && newest=$ng_n
  done
  return 0
}

# Which generations live and next should name, decided from what is on disk (no changes):
# sets $want_live and $want_next (numbers, or empty).
# Also sets $live_pointer and $next_pointer: the generations the pointers name now (pointer_number).
resolve() {
  d=$1
  pointer_of "$d/live"
  live_pointer=$pn
  pointer_of "$d/next"
  next_pointer=$pn
  want_live=$live_pointer
  if [ -z "$want_live" ] || [ ! -f "$d/archive/$want_live/key.pem" ]; then
    want_live=$(newest_generation "$d" complete)
    [ -n "$want_live" ] || want_live=$(newest_generation "$d")
  fi
  want_next=$next_pointer
  if [ -n "$want_next" ] && { [ ! -f "$d/archive/$want_next/key.pem" ] || [ -f "$d/archive/$want_next/chain.pem" ] ||
    same_file "$d/archive/$want_next/key.pem" "$d/archive/$want_live/key.pem"; }; then
    want_next=
  fi
  if [ -z "$want_next" ] && [ -n "$want_live" ] && [ ! -e "$d/next" ]; then
    # A key made for renewal whose pointer a crash never wrote: the newest key-only generation.
    newest_of "$d"
    if [ "$newest" -gt "$want_live" ] && [ ! -f "$d/archive/$newest/chain.pem" ] &&
      ! same_file "$d/archive/$newest/key.pem" "$d/archive/$want_live/key.pem"; then
      want_next=$newest
    fi
  fi
  return 0
}

# Whether each link $1/<name> for the names $2... reads live/<name>: one readlink for all of them
# (GNU readlink takes several files), as a fact reads every endpoint on every changed run. Any
# doubt (a missing or wrong link) returns false.
live_links_ok() {
  ll_dir=$1 ll_want=
  shift
  for ll_f in "$@"; do
    set -- "$@" "$ll_dir/$ll_f"
    ll_want="$ll_want${ll_want:+
}live/$ll_f"
    shift
  done
  ll_have=$(readlink "$@" 2>/dev/null) || return 1
  [ "$ll_have" = "$ll_want" ]
}

# Whether every compatibility link of endpoint directory $1 (key.pem... -> live/<name>) is in place.
compat_links_ok() {
  # shellcheck disable=SC2086 # COMPAT_NAMES is a list of plain names
  live_links_ok "$1" $COMPAT_NAMES
}

# Why endpoint directory $1 needs reconcile, into $reasons (one per line; empty when it does not).
# Runs in the caller's shell, not in a $(...) subshell: a fact reads every endpoint. Sets
# $want_live and $want_next as resolve() does (empty for a directory without generations), so a
# caller needs no second resolve.
repair_reasons() {
  d=$1 reasons='' want_live='' want_next=''
  if [ -f "$d/key.pem" ] && [ ! -L "$d/key.pem" ]; then reasons="previous layout (key.pem is a file)"; return 0; fi
  [ -e "$d/.staging" ] && add_reason "staging left by an interrupted run"
  for f in $LEGACY_STAGED; do [ -e "$d/$f" ] && add_reason "$f left by an interrupted run"; done
  [ -d "$d/archive" ] || return 0
  resolve "$d"
  [ "$live_pointer" = "$want_live" ] || add_reason "live does not name generation ${want_live:-none}"
  if [ -n "$want_next" ]; then
    [ "$next_pointer" = "$want_next" ] || add_reason "next does not name generation $want_next"
  elif [ -e "$d/next" ] || [ -L "$d/next" ]; then
    add_reason "next names no pending key"
  fi
  if [ -n "$want_live" ] && ! compat_links_ok "$d"; then
    for f in $COMPAT_NAMES; do
      [ "$(readlink "$d/$f" 2>/dev/null)" = "live/$f" ] || { add_reason "$f is not the link live/$f"; break; }
    done
  fi
  return 0
}

add_reason() {
  reasons="$reasons${reasons:+
}$1"
}

# A generation in $1/.staging/gen built from the key file $2 opened with -passin $3 (hard links:
# the key is never copied), with the CSR $4 and, if they are for that key, the certificates
# beside $5 (cert.pem, chain.pem, ca.pem), renamed into archive/<N>. Prints N.
adopt_legacy() {
  d=$1 key=$2 passin=$3 csr=$4 certs=$5
  rm -rf "$d/.staging/gen"
  mkdir -m 700 "$d/.staging/gen"
  ln "$key" "$d/.staging/gen/key.pem"
  case $passin in file:*) ln "${passin#file:}" "$d/.staging/gen/key.pass" ;; esac
  [ -f "$csr" ] && ln "$csr" "$d/.staging/gen/csr.pem"
  if [ -n "$certs" ] && [ -f "$certs/chain.pem" ] && [ -f "$certs/cert.pem" ] && [ -f "$certs/ca.pem" ] &&
    [ "$(openssl x509 -in "$certs/chain.pem" -noout -pubkey 2>/dev/null)" = "$(public_key "$key" "$passin")" ]; then
    for f in cert.pem chain.pem ca.pem; do ln "$certs/$f" "$d/.staging/gen/$f"; done
  fi
  [ -d "$d/archive" ] || mkdir -m 700 "$d/archive"
  n=$(next_number "$d")
  mv -T "$d/.staging/gen" "$d/archive/$n"
  echo "$n"
}

# Move an endpoint directory of the previous layout (key.pem, key.pass, cert.pem... as files at
# the top, a next/ directory while renewing) into generations, keeping every file (hard links).
# The passphrase that opens each key is found wherever an interrupted renewal swap left it.
migrate() {
  d=$1
  [ -f "$d/key.pem" ] && [ ! -L "$d/key.pem" ] || return 0
  old_pass=$(legacy_archived_pass "$d")
  if [ -L "$d/live" ] && same_file "$d/live/key.pem" "$d/key.pem"; then
    : # an interrupted migration already made this generation
  else
    open_key "$d/key.pem" "" "$d/key.pass" "$old_pass" "$d/next/key.pass" ||
      fail "$d/key.pem: openssl cannot read it with key.pass or any passphrase kept beside it; restore key.pass"
    n=$(adopt_legacy "$d" "$d/key.pem" "$passin" "$d/csr.pem" "$d")
    step "legacy live generation $n made"
    point "$d" live "archive/$n"
    step "live points at it"
  fi
  if [ -d "$d/next" ] && [ ! -L "$d/next" ]; then
    if [ -f "$d/next/key.pem" ] && ! same_file "$d/next/key.pem" "$d/live/key.pem"; then
      live_public=''
      if open_key "$d/live/key.pem" "" "$d/live/key.pass"; then live_public=$public; fi
      open_key "$d/next/key.pem" "" "$d/next/key.pass" "$d/key.pass" ||
        fail "$d/next/key.pem: openssl cannot read it with next/key.pass or key.pass; restore its key.pass"
      if [ "$public" != "$live_public" ]; then
        n=$(adopt_legacy "$d" "$d/next/key.pem" "$passin" "$d/next/csr.pem" "")
        step "legacy next generation $n made"
      fi
    fi
    mv -T "$d/next" "$d/.staging/legacy-next"
    step "legacy next/ moved aside"
  fi
  point_compat "$d"
  step "top-level names link through live"
}

# Bring endpoint directory $1 to the state resolve() names, from whatever a crash left.
repair() {
  d=$1
  [ -d "$d" ] || return 0
  stage_clear "$d"
  for f in $LEGACY_STAGED; do rm -f "${d:?}/$f"; done
  migrate "$d"
  [ -d "$d/archive" ] || { rm -rf "$d/.staging"; return 0; }
  resolve "$d"
  if [ -n "$want_live" ] && [ "$(pointer_number "$d/live")" != "$want_live" ]; then
    point "$d" live "archive/$want_live"
  fi
  if [ -n "$want_next" ]; then
    [ "$(pointer_number "$d/next")" = "$want_next" ] || point "$d" next "archive/$want_next"
  elif [ -e "$d/next" ] || [ -L "$d/next" ]; then
    rm -f "$d/next"
  fi
  if [ -n "$want_live" ] && ! compat_links_ok "$d"; then point_compat "$d"; fi
  rm -rf "$d/.staging"
}

# kestrel.env as the host writes it. The password is read by sed from the file and printed by the
# shell's builtin printf: never argv.
env_text() {
  printf 'Kestrel__Certificates__Default__Path=%s\n' "$1"
  printf 'Kestrel__Certificates__Default__Password="%s"\n' "$(sed -e 's/[\\"`$]/\\&/g' "$2")"
}

# Owner and modes of hand-off directory $1 (group $2, modes $3/$4) and of generation $5, if any:
# one chown and one chmod for the directories, one of each for the files.
handoff_modes() {
  hm_dir=$1 hm_group=$2 hm_dirmode=$3 hm_filemode=$4 hm_gen=${5:-}
  set -- "$hm_dir"
  [ -d "$hm_dir/archive" ] && set -- "$@" "$hm_dir/archive"
  [ -n "$hm_gen" ] && set -- "$@" "$hm_gen"
  chown "root:$hm_group" "$@"
  chmod "$hm_dirmode" "$@"
  [ -n "$hm_gen" ] || return 0
  set --
  for f in receiver.pfx pfx.pass kestrel.env; do
    if [ -f "$hm_gen/$f" ]; then set -- "$@" "$hm_gen/$f"; fi
  done
  [ $# -gt 0 ] || return 0
  chown "root:$hm_group" "$@"
  chmod "$hm_filemode" "$@"
}

# Owner and modes of hand-off directory $1 and of its live generation (group $2, modes $3/$4).
handoff_live_modes() {
  gen_n=$(pointer_number "$1/live")
  handoff_modes "$1" "$2" "$3" "$4" "${gen_n:+$1/archive/$gen_n}"
}

# Rewrite the live hand-off generation's kestrel.env in $1 (group $2, mode $3) by rename, from the
# PFX path and the password in pfx.pass beside it.
rewrite_env() {
  gen_n=$(pointer_number "$1/live")
  [ -n "$gen_n" ] || fail "$1: there is no live PKCS#12"
  stage_clear "$1"
  env_text "$1/archive/$gen_n/receiver.pfx" "$1/archive/$gen_n/pfx.pass" > "$1/.staging/kestrel.env"
  chown "root:$2" "$1/.staging/kestrel.env"
  chmod "$3" "$1/.staging/kestrel.env"
  mv -f "$1/.staging/kestrel.env" "$1/archive/$gen_n/kestrel.env"
  rm -rf "$1/.staging"
}

# Whether PEM file $1 is exactly one certificate: its BEGIN line, base64 lines and its END line,
# each ending in a newline, and nothing else (no carriage return, no text around it). Its text
# goes into $block. The shell's read: no process.
one_certificate() {
  block='' oc_state=begin oc_line=''
  while IFS= read -r oc_line; do
    case $oc_state:$oc_line in
      "begin:-----BEGIN CERTIFICATE-----") oc_state=body ;;
      "body:-----END CERTIFICATE-----") oc_state=end ;;
      body:*[!A-Za-z0-9+/=]*) return 1 ;;
      body:?*) ;;
      *) return 1 ;;
    esac
    block="$block$oc_line
"
    oc_line=''
  done < "$1"
  [ "$oc_state" = end ] && [ -z "$oc_line" ] # a last line without its newline is refused too
}

# Whether file $1 begins with text $2, one certificate's lines as one_certificate gives them.
begins_with() {
  bw_text=''
  while IFS= read -r bw_line; do
    bw_text="$bw_text$bw_line
"
    [ "$bw_line" = "-----END CERTIFICATE-----" ] && break
  done < "$1"
  [ "$bw_text" = "$2" ]
}

# Whether $1 and $2 are the same file (hard links of one key count as one).
same_file() {
  [ -e "$1" ] && [ -e "$2" ] && [ "$(stat -L -c %d:%i "$1")" = "$(stat -L -c %d:%i "$2")" ]
}

# Run script file $2 (a shipped host script: bars_receiver/shipping.py) as sh FILE once per $1
# lines of standard input, each line one argument, as many at once as the host has cores; nothing
# runs for empty input. Fails when any run fails (xargs: 123, or 125 when one was killed).
on_every_core_file() {
  xargs -r -d '\n' -n "$1" -P "$(nproc 2>/dev/null || echo 1)" sh "$2"
}

# Function $1 run as "$1 <share> <shares> <item>..." once per core (the items $2... listed once,
# here), each in a subshell of its own (the functions come along: nothing is exec'd) writing to
# a file of its own in a root-only temporary directory, then those files printed in turn: a fact
# that reads every endpoint directory reads them on every core. Fails when any share fails, so a
# share that died never passes for a host with fewer endpoints. The shares' order is not kept
# (each block of a fact's output names its endpoint). Its trap replaces the caller's meanwhile.
on_every_core() {
  oc_function=$1
  shift
  oc_shares=$(nproc 2>/dev/null || echo 1)
  if [ "$oc_shares" -le 1 ] || [ $# -le 1 ]; then
    "$oc_function" 0 1 "$@"
    return
  fi
  oc_tmp=$(mktemp -d) || return 1
  trap 'rm -rf "$oc_tmp"' EXIT HUP INT TERM
  oc_pids='' oc_k=0
  while [ "$oc_k" -lt "$oc_shares" ]; do
    "$oc_function" "$oc_k" "$oc_shares" "$@" > "$oc_tmp/$oc_k" &
    oc_pids="$oc_pids $!"
    oc_k=$((oc_k + 1))
  done
  oc_status=0
  for oc_pid in $oc_pids; do wait "$oc_pid" || oc_status=1; done
  [ "$oc_status" -eq 0 ] && cat "$oc_tmp"/* || oc_status=1
  rm -rf "$oc_tmp"
  trap - EXIT HUP INT TERM
  return "$oc_status"
}

# Whether item $1 (counting from 1) is in share $2 of $3: every $3-th item, from the ($2 + 1)-th.
in_share() {
  [ $(($1 % $3)) -eq $(($2 % $3)) ] && [ "$1" -gt 0 ]
}

# The hand-off state of an application's endpoints ($2: FQDNs separated by ','): each FQDN with
# the generation its live/ names, in the order given; empty when none has a PFX yet.
handoff_state() {
  state=
  for f in $(printf '%s' "$2" | tr ',' ' '); do
    target=$(readlink "$1/$f/live" 2>/dev/null) || continue
    state="$state$f=$target "
  done
  printf '%s' "${state% }"
}

# A digest of everything nginx serves from: the live file $1 and every file it names with an ssl_*
# or js_import directive (certificates, keys, CA bundle, CRL, password files). Only the digest is
# printed (nginx_loaded.sh, nginx_reload.sh).
served_digest() {
  { cat "$1"
    # One cat for every named file (the same bytes as one cat each), not a process per file.
    sed -n 's/^[[:space:]]*\(ssl_[a-z_]*\|js_import\)[[:space:]]\(\/[^;]*\);$/\2/p' "$1" | sort -u | xargs -r cat --
  } 2>/dev/null | sha256_hex
}
