import ArgumentParser
import Foundation
import SyncServer

/// `turso-sync-server --sync-server <host:port> <db-path>`: the built-in backend, with tursodb's argv
/// so that `TURSODB_BIN` can point at it.
@main
struct SyncServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turso-sync-server",
        abstract: "Serve one SQLite database over the Turso sync protocol and Hrana over HTTP.",
        discussion: """
            Environment: TURSO_SYNC_SYNCHRONOUS (full|normal, default full), \
            TURSO_SYNC_STREAM_EXPIRY_SECONDS (15), TURSO_SYNC_MAX_BODY_BYTES (134217728), \
            TURSO_LOG_LEVEL (info); set by a node: TURSO_SYNC_EXIT_WITH_PARENT, TURSO_SYNC_NODE_SECRET.
            """
    )

    @Option(name: .customLong("sync-server"), help: ArgumentHelp("Listen address.", valueName: "host:port"))
    var address: String

    @Argument(help: ArgumentHelp("The database file (created if missing).", valueName: "db-path"))
    var databasePath: String

    func run() async throws {
        await SyncServerMain.run(
            address: self.address,
            databasePath: self.databasePath,
            environment: ProcessInfo.processInfo.environment
        )
    }
}
