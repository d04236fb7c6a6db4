package handlers

import (
	"net"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"
)

// hstsMaxAge is how long browsers keep to HTTPS once they have seen the
// dashboard over it: a year when it is served over HTTPS, else no header.
// Subdomains are left alone (the routes say so): they are not ours.
func (s *Server) hstsMaxAge() int {
	if !s.secure {
		return 0
	}
	return 365 * 24 * 60 * 60
}

// clientIP decides what c.RealIP() returns: the socket's address, unless
// the connection comes from one of the trusted proxies, whose
// X-Forwarded-For then names the client (the nearest address in it that is
// not itself a trusted proxy). Without this, Echo believes the header from
// anyone, and a client could pick its own address on every request.
func clientIP(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		a := p.Masked().Addr()
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// noStore keeps every dynamic answer out of browser and proxy caches: pages
// carry CSRF tokens, the API device keys and connection strings. Static
// assets set their own (long) caching.
func noStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !strings.HasPrefix(c.Request().URL.Path, "/static/") {
			c.Response().Header().Set("Cache-Control", "no-store")
		}
		return next(c)
	}
}
