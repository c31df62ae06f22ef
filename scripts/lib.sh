# Shared by the scripts in this directory: checks that they run as root and
# installs what they need on a Debian machine.

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "$0: run as root: it creates network namespaces" >&2
		exit 1
	fi
}

# need_go puts a Go toolchain on PATH (the one in /usr/local/go if PATH has
# none) and fails with a clear message if there is none at all.
need_go() {
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		export PATH="$PATH:/usr/local/go/bin"
	fi
	if ! command -v go >/dev/null 2>&1; then
		echo "$0: needs Go 1.26 or newer (https://go.dev/dl/) in PATH or /usr/local/go" >&2
		exit 1
	fi
}

# need_cmds CMD:PACKAGE... installs the Debian package of every command
# that is missing.
need_cmds() {
	local missing=()
	for pair in "$@"; do
		command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	for attempt in 1 2 3; do
		if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
			quiet_etcd_service "${missing[@]}"
			quiet_docker_service "${missing[@]}"
			return 0
		fi
		echo "apt-get failed (attempt $attempt); retrying" >&2
		sleep 5
	done
	echo "$0: could not install ${missing[*]}" >&2
	exit 1
}

# quiet_etcd_service: Debian's etcd-server starts a system etcd on the
# host's loopback when systemd runs. The scripts install the package for
# its binary only (the demo and the tests start their own members inside
# their namespaces), so a service they just installed is stopped and
# disabled again.
quiet_etcd_service() {
	case " $* " in *" etcd-server "*) ;; *) return 0 ;; esac
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now etcd >/dev/null 2>&1 || true
	fi
}

# quiet_docker_service: Debian's docker.io starts a system dockerd (with
# docker0 and iptables rules in the host's namespace) when systemd runs.
# The tests install it for its binaries only and run their own engines
# inside their namespaces, so a service they just installed is stopped
# and disabled again.
quiet_docker_service() {
	case " $* " in *" docker.io "*) ;; *) return 0 ;; esac
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now docker.service docker.socket containerd.service >/dev/null 2>&1 || true
	fi
}
