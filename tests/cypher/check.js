// Reads a JSON array of Cypher statements on stdin; prints, for each, the errors that
// Neo4j's own parser (@neo4j-cypher/language-support) reports. Parameters are not
// declared here, so "Parameter $x is not defined" is not an error.
const { lintCypherQuery } = require("@neo4j-cypher/language-support");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const statements = JSON.parse(input);
  const errors = statements.map((statement) =>
    lintCypherQuery(statement, {})
      .diagnostics.filter((d) => d.severity === 1 && !/^Parameter \$\w+ is not defined/.test(d.message))
      .map((d) => d.message)
  );
  process.stdout.write(JSON.stringify(errors));
});
