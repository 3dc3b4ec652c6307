import ArgumentParser
import Foundation
import Node
import SyncServer

/// `turso-server`: runs a node configured from the environment; with tursodb's
/// `--sync-server <host:port> <db-path>` argv it runs the built-in backend instead (that is how a node
/// starts its backends, through `/proc/self/exe`).
@main
struct TursoServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turso-server",
        abstract: "Many Turso/SQLite databases (namespaces) behind one HTTP endpoint.",
        discussion: NodeHelp.environment,
        version: NodeHelp.version,
        subcommands: [CertsCommand.self, MembershipAgentCommand.self, VersionCommand.self]
    )

    /// tursodb's backend argv, `--sync-server <host:port> <db-path>`: both values belong to the option,
    /// so no positional argument competes with the subcommands' names.
    @Option(
        name: .customLong("sync-server"),
        parsing: .upToNextOption,
        help: ArgumentHelp("Run the built-in backend for one database.", valueName: "host:port> <db-path")
    )
    var syncServer: [String] = []

    func validate() throws {
        if !self.syncServer.isEmpty && self.syncServer.count != 2 {
            throw ValidationError("usage: turso-server --sync-server <host:port> <db-path>")
        }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        if self.syncServer.count == 2 {
            await SyncServerMain.run(
                address: self.syncServer[0],
                databasePath: self.syncServer[1],
                environment: environment
            )
        }
        let status = await NodeMain.run(environment: environment)
        if status != 0 { throw ExitCode(status) }
    }
}

/// `turso-server version`.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version.")

    func run() {
        print("turso-server \(NodeHelp.version)")
    }
}
