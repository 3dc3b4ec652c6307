import Foundation
import Node

// Creates through the one-node cluster log, then a restart over the result.
// Usage: swift run -c release directory-bench [namespaces (100000)] [concurrency (64)] [data directory]
// With a data directory, the state stays there (start a node on it to time listing).
let arguments = Array(CommandLine.arguments.dropFirst())
let namespaces = arguments.first.flatMap { Int($0) } ?? 100_000
let concurrency = arguments.dropFirst().first.flatMap { Int($0) } ?? 64
let dataDirectory = arguments.count > 2 ? arguments[2] : nil
let report = try await DirectoryBenchmark.run(
    namespaces: namespaces,
    concurrency: concurrency,
    dataDirectory: dataDirectory
)
print(report)
