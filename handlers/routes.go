package handlers

import (
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"fieldhub/db"
)

// routes lists every route of the dashboard listener, so the whole surface reads in one screen.
func (s *Server) routes(e *echo.Echo) {
	e.Use(middleware.Recover())
	e.Use(middleware.SecureWithConfig(middleware.SecureConfig{
		XSSProtection: "", ContentTypeNosniff: "nosniff", XFrameOptions: "DENY",
		ReferrerPolicy:        "same-origin",
		ContentSecurityPolicy: "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'",
	}))

	// Open to everyone.
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if s.assets != nil {
		e.GET("/static/*", echo.WrapHandler(s.assets.Handler()))
	}

	// Everything below knows who is asking.
	g := e.Group("", s.identify)
	viewer := s.requireRole(db.RoleViewer)
	admin := s.requireRole(db.RoleAdmin)

	// Operator REST API.
	api := g.Group("/api/v1")
	api.GET("/devices", s.apiListDevices, viewer)
	api.POST("/devices", s.apiCreateDevice, admin)
	api.GET("/devices/:id", s.apiShowDevice, viewer)
	api.PATCH("/devices/:id", s.apiUpdateDevice, admin)
	api.DELETE("/devices/:id", s.apiDeleteDevice, admin)
	api.POST("/devices/:id/keys/rotate", s.apiRotateDeviceKey, admin)
}
