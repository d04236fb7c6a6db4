// Package query is the device subset of the Azure IoT Hub query language:
// it parses queries and conditions, evaluates them on device documents, and
// compiles conditions to SQL (SQLite and PostgreSQL) that gives the same
// answers, so that a store can filter 10,000 devices in the database.
//
// # Language
//
//	SELECT [TOP n] * | <column> [, <column>]… FROM devices
//	    [WHERE <condition>]
//	    [GROUP BY <field> [, <field>]…]
//
//	<column>    ::= <field> [AS name] | COUNT() [AS name]
//	<condition> ::= <condition> OR <condition> | <condition> AND <condition>
//	              | NOT <condition> | ( <condition> )
//	              | <operand> ( = | != | <> | < | <= | > | >= ) <operand>
//	              | <operand> ( IN | NIN ) [ <constant> [, <constant>]… ]
//	              | <function> ( <operand> [, <operand>] )
//	              | <operand>        (true only when it is the Boolean true)
//	<operand>   ::= <field> | <constant>
//	<field>     ::= name ( .name | .[[any name]] | ['any name'] )…
//	<constant>  ::= 'string' | "string" | number | true | false | null
//
// Keywords and function names are case-insensitive. Field names are
// case-sensitive, except the document's own top-level names (deviceId,
// status, tags, properties.desired, …), which Azure matches in any case
// (its own example selects DeviceId and gets deviceId). A name that is a
// keyword is written [[name]], as in Azure (tags.[[group]]); any name can
// also be written tags['my key']. Strings take the escapes \' \" \\ \/ \b
// \f \n \r \t and \uXXXX (two for characters above U+FFFF); numbers are
// decimal with an optional fraction and exponent, or hexadecimal (0x1F).
// ParseCondition reads a condition alone, as jobs' queryCondition does.
//
// Functions: IS_DEFINED, IS_NULL, IS_BOOL, IS_NUMBER, IS_STRING, IS_OBJECT,
// IS_ARRAY, IS_PRIMITIVE (true or false, never undefined), and STARTS_WITH,
// ENDS_WITH, CONTAINS (also spelled STARTSWITH and ENDSWITH), which compare
// strings by their bytes and are undefined unless both arguments are
// strings.
//
// # Documents and semantics
//
// A device document is JSON-like: map[string]any, []any, string, float64
// (other Go numbers and json.Number are taken as numbers), bool and nil.
// The fields Azure's device twins have (deviceId, status "enabled" or
// "disabled", connectionState "Connected" or "Disconnected",
// lastActivityTime as an ISO 8601 string, tags, properties.desired,
// properties.reported) are what queries expect; Fieldhub adds name and
// online. The caller builds the document; the package only reads it.
//
// Conditions have three values, as in Azure's engine (Cosmos DB's rules):
// true, false and undefined. Comparing values of different types, or a
// field that is not there, or an object or array, is undefined: a number
// 5 is neither equal nor unequal to the string '5'. Only true matches, and
// NOT undefined is undefined, so NOT tags.site = 'x' and tags.site != 'x'
// select the same devices and neither selects devices without a site.
// AND and OR follow Kleene's logic (false AND undefined is false, true OR
// undefined is true). x IN [a, b] is x = a OR x = b, and NIN is NOT IN.
// Strings compare by Unicode code points (byte order of UTF-8), numbers
// numerically, false < true, and null = null.
//
// # SQL
//
// Query.SQL and CondSQL compile a condition to an SQL expression that is
// true, false or NULL (undefined) for a row exactly when the evaluator
// says so; a test runs the same conditions through both, on real SQLite
// and PostgreSQL, over a generated fleet. A FieldMapper tells where each
// part of the document lives: JSON columns (tags, twins) read with
// json_type/json_extract or jsonb's ->, and plain columns for deviceId,
// status and the like. Every constant of the query is a bound parameter.
// Projections and grouping are computed on the matching documents with
// Query.Project and a Grouper.
//
// # Bounds
//
// Queries are at most 8 KB (Azure's limit), nest at most 32 levels of
// parentheses and NOTs, and list at most 1,000 values in IN.
//
// # Differences from Azure IoT Hub
//
//   - Left out: the routing-only functions (AS_NUMBER, ABS, CEILING, FLOOR,
//     EXP, POWER, SIGN, SQRT, SQUARE, CONCAT, INDEX_OF, LENGTH, LOWER, UPPER,
//     SUBSTRING), arithmetic operators, the aggregates AVG, SUM, MIN and MAX
//     (Azure's grammar lists them; COUNT() is the one it documents for
//     device queries), array indexing (a[0]), and FROM devices.modules and
//     devices.jobs. Each is refused with an error saying so.
//   - Added: the type-checking functions and STARTS_WITH, ENDS_WITH and
//     CONTAINS, which Azure documents for routing conditions, are accepted
//     in device queries; ['name'] quoting; the condition alone.
//   - Azure's ordinal string order is by UTF-16 code units; here it is by
//     code points, which differs only between characters above U+FFFF and
//     those from U+E000 to U+FFFF.
//   - Numbers are float64 in the evaluator and SQLite; PostgreSQL compares
//     jsonb numbers as exact decimals, which differs only for numbers that
//     float64 cannot tell apart.
//   - Strings cannot hold U+0000 (PostgreSQL cannot store it).
//   - Comparisons of objects or arrays are undefined (Azure documents
//     comparisons of primitives only).
//   - Rows of GROUP BY come in the order their groups were first seen; an
//     unnamed COUNT() is named $1 (then $2, …), as Cosmos DB names unnamed
//     values. TOP is parsed; applying it (LIMIT) is the caller's.
//   - These semantics follow Azure's documentation and Cosmos DB's
//     documented rules; they have not been checked against a live hub.
package query
