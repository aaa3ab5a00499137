// The plain objects @grpc/proto-loader hands back for the Stagedoor messages
// this example reads, loaded with { longs: String, enums: String,
// defaults: true, oneofs: true }: int64 fields arrive as decimal strings
// (never lossy numbers), enums by name, unset messages as null.

/** google.protobuf.Timestamp and Duration as proto-loader decodes them. */
export interface Seconds {
  readonly seconds: string;
  readonly nanos: number;
}

/** stagedoor.catalog.v1.Concert. */
export interface Concert {
  readonly id: string;
  readonly title: string;
  readonly venue: string;
}

/** stagedoor.catalog.v1.ConcertDate. */
export interface ConcertDate {
  readonly id: string;
  readonly concertId: string;
  readonly date: string;
  readonly startTime: Seconds | null;
  readonly availableSeatCount: number;
  readonly totalSeatCount: number;
}

/** stagedoor.catalog.v1.Seat. */
export interface Seat {
  readonly id: string;
  readonly concertDateId: string;
  readonly number: number;
  readonly grade: string;
  readonly price: string;
  readonly state: string;
}

/** stagedoor.queue.v1.QueueStatus. */
export interface QueueStatus {
  readonly concertId: string;
  readonly state: string;
  readonly position: string;
  readonly waitingCount: string;
  readonly estimatedWait: Seconds | null;
  readonly expireTime: Seconds | null;
}

/** stagedoor.wallet.v1.Wallet. */
export interface Wallet {
  readonly userId: string;
  readonly balance: string;
  readonly version: string;
}

/** grpc.health.v1.HealthCheckResponse. */
export interface HealthStatus {
  readonly status: string;
}
