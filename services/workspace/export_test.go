package workspace

// FirstMigrations are the migrations of the first release, to build a database as it left it.
var FirstMigrations = migrations[:1]
