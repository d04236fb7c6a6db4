package handlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/policy"
	"fieldhub/storage"
	"fieldhub/views"
)

// The shared access policies page (admins): list, add, rotate and remove
// the policies back-end apps use with the service API. Keys are shown only
// when asked, and that is audited (policy.reveal), as device keys are.

// maxPolicyForm bounds the add form: a name and four rights.
const maxPolicyForm = 4 * 1024

func (s *Server) policyService() (Policies, error) {
	if s.policies == nil {
		return nil, errorf(http.StatusServiceUnavailable, "the service API is not running")
	}
	return s.policies, nil
}

// serviceHost is the HostName of service connection strings: the device
// listener's host and port.
func (s *Server) serviceHost() string {
	return policy.ServiceHost(s.endpoints.Host, s.endpoints.HTTPSPort)
}

func (s *Server) showPolicies(c echo.Context) error {
	return s.renderPolicies(c, http.StatusOK, views.PoliciesPage{})
}

func (s *Server) renderPolicies(c echo.Context, status int, m views.PoliciesPage) error {
	ps, err := s.policyService()
	if err != nil {
		return err
	}
	list, err := ps.List(c.Request().Context())
	if err != nil {
		return err
	}
	m.Page = s.page(c, "Shared access policies", views.NavPolicies)
	m.RightNames, m.Host = db.RightNames(), s.serviceHost()
	for _, p := range list {
		m.Policies = append(m.Policies, views.PolicyRow{Name: p.Name, Rights: p.Rights.Names(), CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt})
	}
	return s.render(c, status, views.PoliciesView(m))
}

func (s *Server) createPolicy(c echo.Context) error {
	ps, err := s.policyService()
	if err != nil {
		return err
	}
	c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, maxPolicyForm)
	form, err := c.FormParams()
	if err != nil {
		return errorf(http.StatusBadRequest, "the form could not be read")
	}
	name, rights := strings.TrimSpace(form.Get("name")), form["rights"]
	refuse := func(msg string) error {
		return s.renderPolicies(c, http.StatusUnprocessableEntity, views.PoliciesPage{Name: name, Rights: rights, Error: msg})
	}
	r, err := db.ParseRights(strings.Join(rights, ","))
	if err == nil {
		_, err = ps.Create(c.Request().Context(), actor(c), name, r)
	}
	var inv *storage.InvalidError
	switch {
	case errors.As(err, &inv):
		return refuse(inv.Error())
	case errors.Is(err, storage.ErrConflict):
		return refuse("a policy named " + name + " exists already")
	case err != nil:
		return err
	}
	return s.redirectWith(c, views.PoliciesPath, "Policy "+name+" added. Show its connection strings to set up an app.", false)
}

// showPolicyConnectionString is the partial with a policy's connection
// strings, for admins; who saw them is audited.
func (s *Server) showPolicyConnectionString(c echo.Context) error {
	ps, err := s.policyService()
	if err != nil {
		return err
	}
	p, err := ps.Reveal(c.Request().Context(), actor(c), c.Param("name"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	host := s.serviceHost()
	secondary := p
	secondary.PrimaryKey = p.SecondaryKey
	return s.render(c, http.StatusOK, views.PolicyConnectionStrings(p.Name, policy.ConnectionString(host, p), policy.ConnectionString(host, secondary)))
}

func (s *Server) rotatePolicyKey(c echo.Context) error {
	ps, err := s.policyService()
	if err != nil {
		return err
	}
	name, which := c.Param("name"), c.FormValue("which")
	if _, err := ps.RotateKey(c.Request().Context(), actor(c), name, which); err != nil {
		var inv *storage.InvalidError
		if errors.As(err, &inv) {
			return s.redirectWith(c, views.PoliciesPath, inv.Error(), true)
		}
		return err
	}
	return s.redirectWith(c, views.PoliciesPath, "The "+which+" key of "+name+" was replaced: apps using it need the new connection string.", false)
}

func (s *Server) deletePolicy(c echo.Context) error {
	ps, err := s.policyService()
	if err != nil {
		return err
	}
	name := c.Param("name")
	if err := ps.Remove(c.Request().Context(), actor(c), name); err != nil {
		return err
	}
	return s.redirectWith(c, views.PoliciesPath, "Policy "+name+" removed.", false)
}
