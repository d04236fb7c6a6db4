package doctor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// Port is a listen address the hub will bind.
type Port struct {
	// Name says what listens there: "dashboard", "device HTTPS", …
	Name string
	// Addr is host:port as given on the command line.
	Addr string
	// Flag names the setting that moves it, for the fix:
	// "--device-addr (env FIELDHUB_DEVICE_ADDR)".
	Flag string
}

// CheckPort tries to listen on p.Addr and lets go at once. A port taken by
// the hub running on this data folder (hub, from Lock) is as it should be;
// one taken by anything else is a problem that names the process when
// this system lets us see it.
func CheckPort(p Port, hub Holder) Finding {
	f := Finding{Check: "port"}
	_, portStr, err := net.SplitHostPort(p.Addr)
	if err != nil {
		f.Severity, f.What, f.Fix = Problem, fmt.Sprintf("%s address %q is not host:port", p.Name, p.Addr), "give "+p.Flag+" as host:port, e.g. :8443"
		return f
	}
	port, err := net.LookupPort("tcp", portStr)
	if err != nil {
		f.Severity, f.What, f.Fix = Problem, fmt.Sprintf("%s port %q: %v", p.Name, portStr, err), "give "+p.Flag+" a port number"
		return f
	}
	if port == 0 {
		f.What = fmt.Sprintf("%s on %s takes any free port at start", p.Name, p.Addr)
		return f
	}
	ln, err := net.Listen("tcp", p.Addr)
	if err == nil {
		ln.Close()
		f.What = fmt.Sprintf("%s port %s is free", p.Name, p.Addr)
		return f
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		owner, found := listenerOwner(port)
		switch {
		case hub.Running && hub.PID != 0 && found && owner.PID == hub.PID:
			f.What = fmt.Sprintf("%s port %s is held by the hub running on this data folder (pid %d)", p.Name, p.Addr, hub.PID)
		case hub.Running && (!found || owner.PID == 0):
			f.What = fmt.Sprintf("%s port %s is in use, presumably by the hub running on this data folder", p.Name, p.Addr)
		default:
			f.Severity = Problem
			f.What = fmt.Sprintf("%s port %s is in use", p.Name, p.Addr)
			if found {
				f.What += " by " + owner.String()
			}
			f.Fix = fmt.Sprintf("stop what listens there, or move the %s with %s", p.Name, p.Flag)
		}
	case errors.Is(err, syscall.EACCES):
		f.Severity = Problem
		f.What = fmt.Sprintf("%s port %d is privileged (below 1024) and this user may not bind it", p.Name, port)
		bin, _ := os.Executable()
		f.Fix = "run the hub with CAP_NET_BIND_SERVICE: the systemd unit (deploy/fieldhub.service) grants it; by hand, setcap cap_net_bind_service=+ep " + bin
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		f.Severity = Problem
		f.What = fmt.Sprintf("%s address %s is not an address of this machine", p.Name, p.Addr)
		f.Fix = fmt.Sprintf("give %s an address of one of this machine's interfaces, or :%d for all of them", p.Flag, port)
	default:
		f.Severity = Problem
		f.What = fmt.Sprintf("%s: cannot listen on %s: %v", p.Name, p.Addr, err)
		f.Fix = "move the " + p.Name + " with " + p.Flag
	}
	return f
}
