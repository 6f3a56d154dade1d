# The rig the side-by-side scripts share (sourced, not run): Xvfb displays, a FreeRDP shadow
# server sharing one of them, and xfreerdp and ecsrdp connected to it at the same time.
# The sourcing script sets $work (a temporary folder) and $pids (what its exit trap kills).

python=.venv/bin/python
ecsrdp=${ECSRDP:-target/release/ecsrdp}
# The reference client: FreeRDP 3.10 from Debian's backports, which `scripts/setup tests`
# unpacks into .peers (XFREERDP=3, the default), or Debian's FreeRDP 2 (XFREERDP=2), or any
# other xfreerdp by path.
xfreerdp_env=()
case ${XFREERDP:-3} in
  3) xfreerdp=$PWD/.peers/freerdp3/usr/bin/xfreerdp3
     # Its own libraries, and OpenSSL's legacy provider for NTLM's MD4 (NLA).
     xfreerdp_env=(LD_LIBRARY_PATH="$PWD/.peers/freerdp3/usr/lib/x86_64-linux-gnu"
       OPENSSL_CONF="$PWD/scripts/lib/openssl-legacy.cnf") ;;
  2) xfreerdp=xfreerdp ;;
  *) xfreerdp=$XFREERDP ;;
esac
[ -x "$ecsrdp" ] || { echo "$(basename "$0"): build the release binary first: cargo build --release" >&2; exit 2; }
command -v "$xfreerdp" >/dev/null || { echo "$(basename "$0"): no $xfreerdp (scripts/setup tests unpacks FreeRDP 3; XFREERDP=2 uses Debian's freerdp2-x11)" >&2; exit 2; }
xfreerdp_version() {  # display: the reference client's version (FreeRDP 2 needs a display)
  DISPLAY=$1 env "${xfreerdp_env[@]}" "$xfreerdp" --version 2>/dev/null | grep -o 'version [0-9.]*' | head -1 | cut -d' ' -f2 || true
}

xvfb() {  # starts an Xvfb of the given size; its display goes to $display (not a subshell:
          # the server's PID must reach the cleanup list)
  local file=$work/display.$RANDOM
  Xvfb -displayfd 3 -screen 0 "$1" -nolisten tcp -noreset >/dev/null 2>&1 3>"$file" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$file" ] && break; sleep 0.1; done
  display=":$(head -n1 "$file")"
}

shadow_server() {  # display: shares it over RDP (NLA, an Administrator with a fresh password);
                   # sets $port, $password and $shadow (its PID)
  password="Rig-$RANDOM-$RANDOM!"
  winpr-hash -u Administrator -p "$password" -f sam > "$work/sam"
  port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # Its certificate goes to $work, not to ~/.config/freerdp.
  DISPLAY=$1 XDG_CONFIG_HOME=$work/config freerdp-shadow-cli /port:"$port" /bind-address:127.0.0.1 /sec:nla \
    /sam-file:"$work/sam" -auth >/dev/null 2>&1 &
  shadow=$!
  pids+=($shadow)
  for _ in $(seq 150); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
}

connect_xfreerdp() {  # display, codec args: sets $xf (its PID)
  DISPLAY=$1 env "${xfreerdp_env[@]}" "$xfreerdp" /v:127.0.0.1:"$port" /u:Administrator \
    /p:"$password" /cert:ignore /size:"${size:-1024x768}" $2 >"$work/xfreerdp.log" 2>&1 &
  xf=$!
  pids+=($xf)
}

connect_ecsrdp() {  # display, codec args: sets $ec (its PID)
  DISPLAY=$1 ECSRDP_DATA_DIR=$work/data ECSRDP_PASSWORD=$password \
    "$ecsrdp" direct 127.0.0.1:"$port" --security nla --trust-new --size "${size:-1024x768}" $2 \
    >"$work/ecsrdp.log" 2>&1 &
  ec=$!
  pids+=($ec)
}

connect_both() {  # display, xfreerdp codec args, ecsrdp codec args: sets $xf and $ec (PIDs)
  connect_xfreerdp "$1" "$2"
  connect_ecsrdp "$1" "$3"
}

still_running() {  # pids...: fails, with both clients' logs, when one has ended
  for pid in "$@"; do
    kill -0 "$pid" 2>/dev/null || { echo "$(basename "$0"): a client ended early:" >&2; cat "$work/xfreerdp.log" "$work/ecsrdp.log" >&2; exit 1; }
  done
}
