import Foundation
import Node
import SyncServer

let arguments = Array(CommandLine.arguments.dropFirst())
let environment = ProcessInfo.processInfo.environment

if arguments.contains("--sync-server") {
    // Started as a backend (tursodb's argv): serve one database with the built-in sync server.
    await SyncServerMain.run(arguments: arguments, environment: environment)
}
switch arguments.first {
case "-h", "--help", "help":
    print(NodeHelp.text)
    exit(0)
case "certs":
    exit(CertsCommand.run(Array(arguments.dropFirst())))
case "membership-agent":
    exit(await MembershipAgent.run(environment: environment))
case "version", "--version":
    print("turso-server \(NodeHelp.version)")
    exit(0)
case nil:
    exit(await NodeMain.run(environment: environment))
default:
    FileHandle.standardError.write(
        Data("turso-server: unknown argument \(arguments[0]); see turso-server --help\n".utf8)
    )
    exit(2)
}
