import Foundation

/// The command line of a namespace's backend: `<TURSODB_BIN> --sync-server 127.0.0.1:<port> <db>`,
/// or the built-in backend (this executable, which serves tursodb's argv itself) when `TURSODB_BIN`
/// is not an executable file.
public struct BackendCommand: Sendable, Equatable {
    public var executable: String
    public var isBuiltIn: Bool

    public init(tursodbBinary: String) {
        if FileManager.default.isExecutableFile(atPath: tursodbBinary),
            !((try? FileManager.default.attributesOfItem(atPath: tursodbBinary)[.type] as? FileAttributeType)
                == .typeDirectory)
        {
            self.executable = tursodbBinary
            self.isBuiltIn = false
        } else {
            self.executable = BackendCommand.currentExecutable()
            self.isBuiltIn = true
        }
    }

    public func arguments(port: Int, databasePath: String) -> [String] {
        ["--sync-server", "127.0.0.1:\(port)", databasePath]
    }

    /// Extra environment for the child: the built-in backend exits when the node dies.
    public var environment: [String: String] {
        self.isBuiltIn ? ["TURSO_SYNC_EXIT_WITH_PARENT": "1"] : [:]
    }

    static func currentExecutable() -> String {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
        return CommandLine.arguments[0]
    }
}
