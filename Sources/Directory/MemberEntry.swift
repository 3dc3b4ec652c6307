/// One member as the directory records it. Its identity is (id, storage id): the storage id is made
/// with the data directory, so a node that comes back with a wiped disk is not taken for its old self.
public struct MemberEntry: Sendable, Equatable {
    public enum State: UInt8, Sendable, Equatable {
        /// Registered, catching up; owns nothing yet.
        case joining = 1
        /// Eligible to own namespaces.
        case active = 2
        /// Handing its namespaces away; gets no new ones.
        case leaving = 3
        /// Gone after a clean leave.
        case left = 4
        /// Taken out by an operator or by the rules (a wiped disk); its storage id is never trusted again.
        case removed = 5
    }

    public var id: String
    public var storageID: String
    public var zone: String
    public var state: State

    public init(id: String, storageID: String, zone: String, state: State) {
        self.id = id
        self.storageID = storageID
        self.zone = zone
        self.state = state
    }
}
