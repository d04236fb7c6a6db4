package query_test

import (
	"errors"
	"fmt"

	"fieldhub/query"
)

func ExampleParse() {
	_, err := query.Parse("SELECT * FROM devices WHERE tags.site = 'berlin' AN properties.reported.firmware < '2.1'")
	var e *query.Error
	if errors.As(err, &e) {
		fmt.Println(e)
		fmt.Println(e.Line, e.Column)
	}
	// Output:
	// unexpected "AN" at column 50: expected AND, OR, GROUP BY or end of query
	// 1 50
}

func ExampleQuery_Match() {
	q, err := query.Parse("SELECT * FROM devices WHERE tags.site = 'berlin' AND NOT properties.reported.firmware >= '2.1'")
	if err != nil {
		panic(err)
	}
	for _, doc := range []map[string]any{
		{"deviceId": "a", "tags": map[string]any{"site": "berlin"}, "properties": map[string]any{"reported": map[string]any{"firmware": "2.0.1"}}},
		{"deviceId": "b", "tags": map[string]any{"site": "berlin"}, "properties": map[string]any{"reported": map[string]any{"firmware": "2.2.0"}}},
		{"deviceId": "c", "tags": map[string]any{"site": "berlin"}, "properties": map[string]any{"reported": map[string]any{}}},
	} {
		fmt.Println(doc["deviceId"], q.Match(doc))
	}
	// Output:
	// a true
	// b false
	// c false
}

func ExampleQuery_SQL() {
	q, err := query.Parse("SELECT * FROM devices WHERE tags.site = 'berlin' AND status = 'enabled'")
	if err != nil {
		panic(err)
	}
	// The mapper says where the store keeps what the documents it gives
	// Match hold: a twin never written reads as {} in both.
	where, args, err := q.SQL(query.SQLite, query.FieldMapper{
		"deviceId":            {Expr: "d.device_id", Type: query.String},
		"status":              {Expr: "CASE d.enabled WHEN 1 THEN 'enabled' ELSE 'disabled' END", Type: query.String},
		"tags":                {Expr: "d.tags", Type: query.JSON},
		"properties.desired":  {Expr: "COALESCE(t.desired, '{}')", Type: query.JSON},
		"properties.reported": {Expr: "COALESCE(t.reported, '{}')", Type: query.JSON},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("SELECT d.device_id FROM devices d LEFT JOIN twins t ON t.device_id = d.id WHERE " + where)
	fmt.Printf("%q\n", args)
	// Output:
	// SELECT d.device_id FROM devices d LEFT JOIN twins t ON t.device_id = d.id WHERE ((CASE WHEN json_type((d.tags), ?) = 'text' THEN (json_extract((d.tags), ?) = ?) END) AND ((CASE d.enabled WHEN 1 THEN 'enabled' ELSE 'disabled' END) = ?))
	// ["$.\"site\"" "$.\"site\"" "berlin" "enabled"]
}

func ExampleGrouper() {
	q, err := query.Parse(`SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices
		FROM devices GROUP BY properties.reported.telemetryConfig.status`)
	if err != nil {
		panic(err)
	}
	g := q.NewGrouper()
	for _, status := range []string{"Success", "Pending", "Success", "Error", "Success", "Pending"} {
		doc := map[string]any{"properties": map[string]any{"reported": map[string]any{"telemetryConfig": map[string]any{"status": status}}}}
		if q.Match(doc) {
			g.Add(doc)
		}
	}
	for _, row := range g.Rows() {
		fmt.Println(row)
	}
	// Output:
	// map[numberOfDevices:3 status:Success]
	// map[numberOfDevices:2 status:Pending]
	// map[numberOfDevices:1 status:Error]
}
