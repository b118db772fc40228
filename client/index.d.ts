// Types of wxrest-client (CommonJS `require('wxrest-client')` and ESM `import`).

/** What a platform's `request` answers, and what `client.request` resolves. */
export interface Response<T = any> {
  statusCode: number;
  data: T;
  header: Record<string, string>;
}

/** A request: `url` relative to `baseUrl` (or absolute). */
export interface RequestOptions {
  url: string;
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD' | 'OPTIONS';
  data?: unknown;
  header?: Record<string, string>;
}

interface Callbacks<T> {
  success?: (result: T) => void;
  fail?: (err: { errMsg: string }) => void;
}

/** The part of `wx` (or `uni`, `Taro`, a stand-in) the client uses. */
export interface Platform {
  login(options: Callbacks<{ code: string }>): unknown;
  request(options: RequestOptions & Callbacks<Response>): unknown;
  requestPayment(options: RequestPayment & Callbacks<{ errMsg: string }>): unknown;
  getStorageSync(key: string): any;
  setStorageSync(key: string, value: any): void;
  removeStorageSync(key: string): void;
}

/** The parameters the server answers for `wx.requestPayment`. */
export interface RequestPayment {
  appId?: string;
  timeStamp: string;
  nonceStr: string;
  package: string;
  signType: string;
  paySign: string;
}

/** The server routes; `{id}` is the order's id. */
export interface Paths {
  login: string;
  refresh: string;
  logout: string;
  order: string;
  pay: string;
}

export interface ClientOptions {
  baseUrl: string;
  wx: Platform;
  /** Storage key of the token pair (`wxrest.session`). */
  storageKey?: string;
  paths?: Partial<Paths>;
  /** The longest `Retry-After` waited, in seconds (10); longer ones are returned. */
  maxRetryAfter?: number;
  /** How many times a 429/503 with `Retry-After` is retried (2). */
  retries?: number;
  /** Pauses between order reads after `wx.requestPayment`, in ms. */
  pollIntervals?: number[];
}

/** The stored session. */
export interface Session<User = any> {
  token: string;
  refresh: string | null;
  user: User | null;
}

/** A paid or cancelled payment, with the order as the server last answered it. */
export interface PayResult<Order = any> {
  status: 'paid' | 'cancelled';
  order: Order;
}

export interface Client {
  /** `wx.login()` then the login route; concurrent calls share one login. */
  login(extra?: Record<string, unknown>): Promise<any>;
  /** A request with `Authorization: JWT <token>`, refreshed or logged in again as needed. */
  request<T = any>(options: RequestOptions): Promise<Response<T>>;
  /** Pays an order; rejects with code `payment_unconfirmed` when the server never saw it paid. */
  pay<Order = any>(orderId: number | string): Promise<PayResult<Order>>;
  /** Ends the session on the server and clears storage. */
  logout(): Promise<void>;
  readonly session: Session | null;
}

/** Errors with the server's `code` and `detail` (or the client's: `network_error`, `payment_unconfirmed`). */
export declare class WxrestError extends Error {
  code: string;
  detail?: string;
  statusCode?: number;
  data?: unknown;
  order?: unknown;
}

export declare function createClient(options: ClientOptions): Client;
export declare const DEFAULT_PATHS: Readonly<Paths>;
export declare const PAID_STATUSES: readonly string[];
export declare const DEFAULT_POLL_INTERVALS: readonly number[];
