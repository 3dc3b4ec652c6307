import Foundation

/// The command line of a namespace's backend: `<TURSODB_BIN> --sync-server 127.0.0.1:<port> <db>`,
/// or the built-in backend (this executable, which serves tursodb's argv itself) when `TURSODB_BIN`
/// is not an executable file.
public struct BackendCommand: Sendable, Equatable {
    /// What is executed. For the built-in backend this is `/proc/self/exe`, which still names this
    /// program after its file was replaced or deleted (an in-place upgrade of a running node).
    public var executable: String
    /// The program's path, for logs.
    public var displayPath: String
    public var isBuiltIn: Bool

    public init(tursodbBinary: String) {
        if FileManager.default.isExecutableFile(atPath: tursodbBinary),
            !((try? FileManager.default.attributesOfItem(atPath: tursodbBinary)[.type] as? FileAttributeType)
                == .typeDirectory)
        {
            self.executable = tursodbBinary
            self.displayPath = tursodbBinary
            self.isBuiltIn = false
        } else {
            let selfLink = "/proc/self/exe"
            let resolved =
                (try? FileManager.default.destinationOfSymbolicLink(atPath: selfLink)) ?? CommandLine.arguments[0]
            self.executable = FileManager.default.fileExists(atPath: selfLink) ? selfLink : resolved
            self.displayPath = resolved
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
}
