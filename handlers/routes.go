package handlers

import (
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"fieldhub/db"
)

// routes lists every route of the dashboard listener, so the whole surface reads in one screen.
func (s *Server) routes(e *echo.Echo) {
	e.Pre(canonicalDeviceBound) // devices spell …/messages/deviceBound in any letter case
	e.Use(middleware.Recover())
	e.Use(s.drainRefusedBody) // a client still writing a refused body reads its 413 (refused_body.go)
	e.Use(decodePathParams)
	e.Use(middleware.SecureWithConfig(middleware.SecureConfig{
		HSTSMaxAge: s.hstsMaxAge(), HSTSExcludeSubdomains: true,
		XSSProtection: "", ContentTypeNosniff: "nosniff", XFrameOptions: "DENY",
		ReferrerPolicy:        "same-origin",
		ContentSecurityPolicy: "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'",
	}))
	e.Use(noStore)

	// Open to everyone.
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if s.assets != nil {
		e.GET("/static/*", echo.WrapHandler(s.assets.Handler()))
	}

	// The Azure device API (handlers/device_ingest.go), authenticated by SAS
	// tokens, not by sessions.
	if !s.separateDevice {
		s.DeviceRoutes(e)
	}

	// Everything below knows who is asking.
	g := e.Group("", s.identify)
	viewer := s.requireRole(db.RoleViewer)
	operator := s.requireRole(db.RoleOperator)
	admin := s.requireRole(db.RoleAdmin)

	// Dashboard pages (handlers/login.go, fleet.go, device.go, users.go).
	g.GET("/", s.home)
	g.GET("/login", s.showLogin)
	g.POST("/login", s.login)
	g.POST("/logout", s.logout, viewer)
	g.GET("/devices", s.showFleet, viewer)
	g.POST("/devices", s.createDevice, admin)
	g.GET("/devices/:id", s.showDevice, viewer)
	g.POST("/devices/:id", s.updateDevice, admin)
	g.POST("/devices/:id/enable", s.enableDevice, admin)
	g.POST("/devices/:id/disable", s.disableDevice, admin)
	g.POST("/devices/:id/keys/rotate", s.rotateDeviceKey, admin)
	g.POST("/devices/:id/authentication", s.setDeviceAuthentication, admin)
	g.POST("/devices/:id/delete", s.deleteDevice, admin)
	g.GET("/devices/:id/connection-string", s.showConnectionString, admin)
	g.GET("/devices/:id/connect", s.showConnections, admin) // handlers/connect.go
	g.GET(deviceCAPath, s.downloadDeviceCA, viewer)
	g.GET("/import", s.showImport, operator) // handlers/import.go
	g.POST("/import", s.importDevices, limitImportBody, operator)
	g.GET("/jobs", s.showJobs, viewer) // handlers/jobs.go
	g.POST("/jobs", s.createJob, operator)
	g.GET("/jobs/:id", s.showJob, viewer)
	g.POST("/jobs/:id/cancel", s.cancelJob, operator)
	g.GET("/users", s.showUsers, admin)
	g.POST("/users", s.createUser, admin)
	g.POST("/users/:name/password", s.setUserPassword, admin)
	g.POST("/users/:name/delete", s.deleteUser, admin)
	g.POST("/users/:name/role", s.setUserRole, admin)
	g.POST("/tokens", s.createToken, admin) // API tokens, on the users page
	g.POST("/tokens/:id/revoke", s.revokeToken, admin)
	g.GET("/audit", s.showAudit, admin)
	g.GET("/policies", s.showPolicies, admin) // shared access policies of the service API (handlers/policies.go)
	g.POST("/policies", s.createPolicy, admin)
	g.GET("/policies/:name/connection-string", s.showPolicyConnectionString, admin)
	g.POST("/policies/:name/rotate", s.rotatePolicyKey, admin)
	g.POST("/policies/:name/delete", s.deletePolicy, admin)
	g.GET("/storage", s.showStorage, admin) // handlers/storage.go
	// Alerts (handlers/alerts.go).
	g.GET("/alerts", s.showAlerts, viewer)
	g.POST("/alerts/act", s.actOnAlerts, operator)
	g.GET("/alerts/rules", s.showRules, viewer)
	g.GET("/alerts/rules/new", s.newRule, operator)
	g.POST("/alerts/rules", s.createRule, operator)
	g.POST("/alerts/rules/preview", s.previewRule, operator)
	g.GET("/alerts/rules/:id", s.showRule, operator)
	g.POST("/alerts/rules/:id", s.updateRule, operator)
	g.POST("/alerts/rules/:id/enabled", s.setRuleEnabled, operator)
	g.POST("/alerts/rules/:id/delete", s.deleteRule, operator)
	g.GET("/devices/:id/alerts", s.showDeviceAlerts, viewer)
	g.GET("/webhooks", s.showWebhooks, admin)
	g.POST("/webhooks", s.createWebhook, admin)
	g.POST("/webhooks/:id/enabled", s.setWebhookEnabled, admin)
	g.POST("/webhooks/:id/delete", s.deleteWebhook, admin)

	// Operator REST API.
	api := g.Group("/api/v1")
	api.GET("/openapi.json", s.showOpenAPI)     // docs/openapi.json: every route below, kept so by handlers/openapi_test.go
	api.GET("/devices", s.apiListFleet, viewer) // handlers/api_fleet.go: JSON or CSV
	api.POST("/devices", s.apiCreateDevice, admin)
	api.POST("/devices/query", s.apiQueryDevices, viewer)                      // fleet queries (handlers/api_query.go)
	api.POST("/devices/import", s.apiImportDevices, limitImportBody, operator) // bulk import (handlers/api_import.go); applying needs admin
	api.GET("/devices/:id", s.apiShowDevice, viewer)
	api.PATCH("/devices/:id", s.apiUpdateDevice, admin)
	api.DELETE("/devices/:id", s.apiDeleteDevice, admin)
	api.POST("/devices/:id/keys/rotate", s.apiRotateDeviceKey, admin)
	api.GET("/cas", s.apiListCAs, viewer) // CA certificates for X.509 devices (handlers/api_cas.go)
	api.POST("/cas", s.apiAddCA, admin)
	api.DELETE("/cas/:name", s.apiRemoveCA, admin)

	// Telemetry (handlers/api_telemetry.go).
	api.GET("/devices/:id/metrics", s.apiListMetrics, viewer)
	api.GET("/devices/:id/readings", s.apiListReadings, viewer)
	api.GET("/devices/:id/messages", s.apiListMessages, viewer)

	// Commands (handlers/api_commands.go): viewers read, operators act.
	api.GET("/devices/:id/cloud-messages", s.apiListCloudMessages, viewer)
	api.POST("/devices/:id/cloud-messages", s.apiSendCloudMessage, operator)
	api.DELETE("/devices/:id/cloud-messages", s.apiPurgeCloudMessages, operator)
	api.POST("/devices/:id/methods/:name", s.apiInvokeMethod, operator)
	api.GET("/devices/:id/twin", s.apiShowTwin, viewer)
	api.PATCH("/devices/:id/twin", s.apiPatchTwin, operator)
	api.GET("/audit", s.apiListAudit, admin)
	api.GET("/storage", s.apiShowStorage, admin)
	api.GET("/users", s.apiListUsers, admin) // handlers/api_users.go
	api.PATCH("/users/:name", s.apiUpdateUser, admin)
	api.GET("/tokens", s.apiListTokens, admin)
	api.POST("/tokens", s.apiCreateToken, admin)
	api.DELETE("/tokens/:id", s.apiRevokeToken, admin)

	// Jobs (handlers/api_jobs.go): a command on every device a query selects.
	api.GET("/jobs", s.apiListJobs, viewer)
	api.POST("/jobs", s.apiCreateJob, operator)
	api.GET("/jobs/events", s.streamJobs, viewer)
	api.GET("/jobs/:id", s.apiShowJob, viewer)
	api.POST("/jobs/:id/cancel", s.apiCancelJob, operator)

	// Alerts (handlers/api_alerts.go): viewers read, operators and admins
	// act on alerts and rules, admins manage webhooks.
	api.GET("/alert-rules", s.apiListAlertRules, viewer)
	api.POST("/alert-rules", s.apiCreateAlertRule, operator)
	api.POST("/alert-rules/preview", s.apiPreviewAlertRule, operator)
	api.GET("/alert-rules/:id", s.apiShowAlertRule, viewer)
	api.PATCH("/alert-rules/:id", s.apiUpdateAlertRule, operator)
	api.DELETE("/alert-rules/:id", s.apiDeleteAlertRule, operator)
	api.GET("/alerts", s.apiListAlerts, viewer)
	api.GET("/alerts/:id", s.apiShowAlert, viewer)
	api.POST("/alerts/:id/ack", s.apiAcknowledgeAlert, operator)
	api.POST("/alerts/:id/clear", s.apiClearAlert, operator)
	api.GET("/webhooks", s.apiListWebhooks, admin)
	api.POST("/webhooks", s.apiCreateWebhook, admin)
	api.GET("/webhooks/:id", s.apiShowWebhook, admin)
	api.PATCH("/webhooks/:id", s.apiUpdateWebhook, admin)
	api.DELETE("/webhooks/:id", s.apiDeleteWebhook, admin)

	// Prometheus metrics (package metrics), for any role.
	if s.metrics != nil {
		g.GET("/metrics", echo.WrapHandler(s.metrics), viewer)
	}

	// Live streams (server-sent events).
	api.GET("/events", s.streamFleet, viewer)
	api.GET("/devices/:id/events", s.streamDevice, viewer)
}
