package testkit

import "strings"

// MethodNames are direct method names and whether the one rule
// (commands.CheckMethodName) admits them. The services, the API, the MQTT
// broker and the page's form are each tested against this one table.
var MethodNames = []struct {
	Name string
	OK   bool
}{
	{"reboot", true},
	{"set-interval_2.0", true},
	{"Update.Firmware~v2", true},
	{"a!%&'*-.^_`|~z", true},
	{strings.Repeat("m", 128), true},
	{"", false},
	{strings.Repeat("m", 129), false},
	{"a b", false},
	{"a/b", false},
	{"a?b", false},
	{"a#", false},
	{"a+b", false},
	{"$reboot", false},
	{"a(b)", false},
	{"a:b", false},
	{"a\nb", false},
	{"réglage", false},
	{"\xff", false},
}
