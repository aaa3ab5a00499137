/** The languages of the box office. */
export type Lang = "ko" | "en";

/** The language of a browser that prefers neither Korean nor English. */
export const DEFAULT_LANG: Lang = "en";

/**
 * The language a fan sees before choosing one: the first of the browser's
 * preferred languages (`navigator.languages`, most preferred first) that the
 * box office speaks, by primary subtag (`ko-KR` is Korean), else English.
 */
export function preferredLang(browserLanguages: readonly string[]): Lang {
  for (const tag of browserLanguages) {
    const primary = tag.split("-")[0]?.toLowerCase();
    if (isLang(primary)) return primary;
  }
  return DEFAULT_LANG;
}

const en = {
  appTitle: "Stagedoor Box Office",
  languageToggle: "한국어",
  languageToggleLabel: "한국어로 보기 (Switch to Korean)",
  skipToContent: "Skip to content",
  admissionLeft: "Your turn: {time} left",
  loading: "Loading…",
  busyRetrying: "We're busy right now — retrying…",
  reconnecting: "Connection lost — reconnecting…",

  joinHeading: "Join the line",
  joinIntro: "Enter your user id to take your place in line.",
  joinIntroSignedIn: "Take your place in line.",
  concertVenue: "Venue: {venue}",
  userIdLabel: "User id",
  userIdHint: "1 to 128 characters, for example kim.",
  userIdInvalid: "Enter a user id of 1 to 128 characters.",
  joinButton: "Join the line",
  noConcert: "Nothing is on sale right now. Please check back later.",
  signedInAs: "Signed in as {userId}",
  signInNeeded: "Sign in on the organiser's site first; it brings you back here to join the line.",
  signInLink: "Sign in",

  queueHeading: "You're in line",
  queuePositionLabel: "Your place in line",
  queuePosition: "{position}",
  queueWaiting: "People waiting: {count}",
  queueWait: "Estimated wait: {wait}",
  queueChecking: "Checking your place…",
  queueLobby:
    "The sale hasn't opened yet. Everyone who is here before it opens gets a random place in line at the same moment, so there's no need to hurry.",
  queueOpensIn: "Sale opens in {time}",
  queuePaused: "Admission is paused for a moment. You keep your place.",
  queueKeepOpen: "Keep this page open. You'll be let in automatically when it's your turn.",
  waitUnderMinute: "less than a minute",
  waitMinutes: "about {minutes} min",
  leaveQueue: "Leave the line",
  leftQueue: "You left the line.",

  admittedHeading: "You're in!",
  admittedBody: "It's your turn. Pick a date and a seat, then pay before the time runs out.",
  admittedTimer: "Time left: {time}",
  chooseDate: "Choose a date",

  datesHeading: "Pick a date",
  seatsLeft: "{available} of {total} seats left",
  startsAt: "Starts {time}",
  noDates: "Every date is sold out.",

  seatMapHeading: "Pick a seat",
  seatMapIntro: "Seats update every few seconds.",
  legendHeading: "Legend",
  stateAvailable: "Available",
  stateHeld: "Held",
  stateSold: "Sold",
  stateMine: "Yours",
  seatName: "Seat {number}",
  seatLabel: "Seat {number}, {grade}, {price}, {state}",
  gradeHeading: "{grade} · {price}",
  backToDates: "Back to dates",
  holdingBanner: "You're holding seat {number}.",
  continueWithHold: "Continue with seat {number}",
  seatNotFree: "That seat isn't free. Pick a seat marked “Available”.",
  seatsStale: "Showing seats from a moment ago — updating…",

  holdHeading: "Seat {number} is held for you",
  holdTimer: "Time left to pay: {time}",
  holdBar: "Seat {number} · {price} · {time} left",
  labelSeat: "Seat",
  labelDate: "Date",
  labelPrice: "Price",
  labelConcert: "Concert",
  labelBalance: "Balance",
  labelBalanceAfter: "Balance after paying",
  labelReservation: "Reservation number",
  continueToWallet: "Continue to payment",
  releaseSeat: "Release this seat",
  released: "Seat {number} is released.",

  walletHeading: "Your wallet",
  noWalletYet: "No wallet yet — your first top-up creates it.",
  needMore: "You need {amount} more for this seat.",
  enoughBalance: "Your balance covers this seat.",
  topUpHeading: "Top up",
  topUpPreset: "Add {amount}",
  topUpExact: "Add {amount} (what you need)",
  customAmountLabel: "Other amount (won)",
  customAmountHint: "Whole won, digits only.",
  topUpButton: "Top up",
  amountInvalid: "Enter a whole amount of at least 1 won, digits only.",
  toppedUp: "Added {amount}. Your balance is now {balance}.",
  goToPay: "Continue to payment",
  backToSeats: "Back to seats",

  payHeading: "Confirm and pay",
  payButton: "Pay {amount}",
  topUpFirst: "Top up your wallet",

  ticketHeading: "Your ticket is confirmed",
  ticketConfirmed: "Confirmed",
  ticketNote: "Show this reservation number at the entrance.",
  startOver: "Book another ticket",

  errSeatTaken: "Someone just took this seat. Please pick another one.",
  errHoldExpired: "Your hold on this seat expired. Please pick a seat again.",
  errInsufficientBalance: "Your balance is too low — top up your wallet first.",
  errHoldLimit: "You're already holding a seat. Pay for it or release it first.",
  errSessionExpired: "Your place in line expired — please join again.",
  errNotAdmitted: "It isn't your turn yet, or your turn has ended. Checking your place…",
  errAdmissionEnded: "Your turn has ended. Please join the line again.",
  errBusy: "We're busy right now. Please try again in a moment.",
  errBalanceLimit: "That would take your balance over the limit. Try a smaller amount.",
  errInvalidAmount: "That amount can't be used. Try a different amount.",
  errInvalid: "Something you entered isn't valid. Please check it and try again.",
  errAlreadyPaid: "This seat is already paid for.",
  errAmountMismatch: "The price of this seat changed. Please check it and try again.",
  errSaleClosed: "This performance has started, so its seats are no longer sold.",
  errNotFound: "We couldn't find that. It may no longer be on sale.",
  errIdentity: "We couldn't confirm who you are. Please join again.",
  errGeneric: "Something went wrong. Please try again.",
} as const;

/** Every string the box office shows, by key. */
export type MessageKey = keyof typeof en;

const ko: Record<MessageKey, string> = {
  appTitle: "Stagedoor 박스오피스",
  languageToggle: "English",
  languageToggleLabel: "Switch to English (영어로 보기)",
  skipToContent: "본문으로 건너뛰기",
  admissionLeft: "남은 입장 시간 {time}",
  loading: "불러오는 중…",
  busyRetrying: "접속이 많아요. 다시 시도하는 중…",
  reconnecting: "연결이 끊겼어요. 다시 연결하는 중…",

  joinHeading: "대기열 입장",
  joinIntro: "아이디를 입력하고 대기열에 들어가세요.",
  joinIntroSignedIn: "대기열에 들어가세요.",
  concertVenue: "장소: {venue}",
  userIdLabel: "아이디",
  userIdHint: "1~128자. 예: kim",
  userIdInvalid: "아이디를 1~128자로 입력해 주세요.",
  joinButton: "대기열 들어가기",
  noConcert: "지금 판매 중인 공연이 없어요. 나중에 다시 확인해 주세요.",
  signedInAs: "{userId} 님으로 로그인했어요",
  signInNeeded:
    "먼저 주최 측 사이트에서 로그인해 주세요. 로그인하면 이곳으로 돌아와 대기열에 들어갈 수 있어요.",
  signInLink: "로그인하기",

  queueHeading: "대기 중이에요",
  queuePositionLabel: "내 대기 순번",
  queuePosition: "{position}번",
  queueWaiting: "대기 인원: {count}명",
  queueWait: "예상 대기 시간: {wait}",
  queueChecking: "순번을 확인하는 중…",
  queueLobby:
    "아직 판매가 시작되지 않았어요. 오픈 전에 들어온 모든 분은 오픈 순간 무작위로 순번을 받으니 서두르지 않으셔도 돼요.",
  queueOpensIn: "판매 시작까지 {time}",
  queuePaused: "입장이 잠시 멈췄어요. 순번은 그대로 유지돼요.",
  queueKeepOpen: "이 페이지를 열어 두세요. 차례가 되면 자동으로 입장해요.",
  waitUnderMinute: "1분 미만",
  waitMinutes: "약 {minutes}분",
  leaveQueue: "대기 취소",
  leftQueue: "대기열에서 나왔어요.",

  admittedHeading: "입장 차례예요!",
  admittedBody: "지금 입장할 수 있어요. 시간 안에 날짜와 좌석을 고르고 결제해 주세요.",
  admittedTimer: "남은 시간: {time}",
  chooseDate: "날짜 고르기",

  datesHeading: "날짜 선택",
  seatsLeft: "잔여 {available}석 / 전체 {total}석",
  startsAt: "{time} 시작",
  noDates: "모든 회차가 매진되었어요.",

  seatMapHeading: "좌석 선택",
  seatMapIntro: "좌석 현황은 몇 초마다 새로 고쳐져요.",
  legendHeading: "좌석 안내",
  stateAvailable: "선택 가능",
  stateHeld: "선점됨",
  stateSold: "판매 완료",
  stateMine: "내 좌석",
  seatName: "{number}번 좌석",
  seatLabel: "{number}번 좌석, {grade}석, {price}, {state}",
  gradeHeading: "{grade}석 · {price}",
  backToDates: "날짜 다시 고르기",
  holdingBanner: "{number}번 좌석을 선점하고 있어요.",
  continueWithHold: "{number}번 좌석으로 계속하기",
  seatNotFree: "선택할 수 없는 좌석이에요. ‘선택 가능’ 좌석을 골라 주세요.",
  seatsStale: "잠시 전 좌석 현황이에요. 새로 고치는 중…",

  holdHeading: "{number}번 좌석을 잡아 두었어요",
  holdTimer: "결제 남은 시간: {time}",
  holdBar: "{number}번 좌석 · {price} · {time} 남음",
  labelSeat: "좌석",
  labelDate: "날짜",
  labelPrice: "가격",
  labelConcert: "공연",
  labelBalance: "잔액",
  labelBalanceAfter: "결제 후 잔액",
  labelReservation: "예약 번호",
  continueToWallet: "결제 계속하기",
  releaseSeat: "좌석 선점 취소",
  released: "{number}번 좌석 선점을 취소했어요.",

  walletHeading: "내 지갑",
  noWalletYet: "아직 지갑이 없어요. 처음 충전하면 만들어져요.",
  needMore: "이 좌석을 결제하려면 {amount}이 더 필요해요.",
  enoughBalance: "잔액으로 이 좌석을 결제할 수 있어요.",
  topUpHeading: "충전하기",
  topUpPreset: "{amount} 충전",
  topUpExact: "{amount} 충전 (부족한 금액)",
  customAmountLabel: "직접 입력 (원)",
  customAmountHint: "원 단위 숫자만 입력해 주세요.",
  topUpButton: "충전",
  amountInvalid: "1원 이상의 금액을 숫자로만 입력해 주세요.",
  toppedUp: "{amount}을 충전했어요. 현재 잔액은 {balance}이에요.",
  goToPay: "결제하러 가기",
  backToSeats: "좌석으로 돌아가기",

  payHeading: "결제 확인",
  payButton: "{amount} 결제하기",
  topUpFirst: "지갑 충전하기",

  ticketHeading: "예매가 확정되었어요",
  ticketConfirmed: "예매 확정",
  ticketNote: "입장할 때 이 예약 번호를 보여 주세요.",
  startOver: "다른 표 예매하기",

  errSeatTaken: "방금 다른 분이 이 좌석을 선택했어요. 다른 좌석을 골라 주세요.",
  errHoldExpired: "좌석 선점 시간이 끝났어요. 좌석을 다시 골라 주세요.",
  errInsufficientBalance: "잔액이 부족해요. 먼저 지갑을 충전해 주세요.",
  errHoldLimit: "이미 선점한 좌석이 있어요. 먼저 결제하거나 선점을 취소해 주세요.",
  errSessionExpired: "대기 순번이 만료되었어요. 다시 대기열에 들어가 주세요.",
  errNotAdmitted: "아직 차례가 아니거나 입장 시간이 끝났어요. 순번을 확인하는 중…",
  errAdmissionEnded: "입장 시간이 끝났어요. 다시 대기열에 들어가 주세요.",
  errBusy: "지금 접속이 많아요. 잠시 후 다시 시도해 주세요.",
  errBalanceLimit: "충전 한도를 넘어요. 더 적은 금액으로 시도해 주세요.",
  errInvalidAmount: "사용할 수 없는 금액이에요. 다른 금액으로 시도해 주세요.",
  errInvalid: "입력한 내용이 올바르지 않아요. 확인 후 다시 시도해 주세요.",
  errAlreadyPaid: "이미 결제된 좌석이에요.",
  errAmountMismatch: "좌석 가격이 바뀌었어요. 확인 후 다시 시도해 주세요.",
  errSaleClosed: "공연이 시작되어 이 회차는 더 이상 판매하지 않아요.",
  errNotFound: "찾을 수 없어요. 더 이상 판매하지 않는 것 같아요.",
  errIdentity: "본인 확인을 할 수 없어요. 다시 대기열에 들어가 주세요.",
  errGeneric: "문제가 생겼어요. 다시 시도해 주세요.",
};

/**
 * Every string of the box office in both languages: the one table the screens
 * read from, so a label is never missing in one language (the `ko` table is
 * typed against the English keys). The browser tests read it too, to look for
 * the words a fan actually sees.
 */
export const MESSAGES: Readonly<Record<Lang, Readonly<Record<MessageKey, string>>>> = { en, ko };

/** Values put into a message's `{name}` placeholders. */
export type MessageParams = Readonly<Record<string, string | number>>;

/**
 * Looks up a message and fills its `{name}` placeholders, so screens never
 * build sentences by concatenation (word order differs between the languages).
 */
export function translate(lang: Lang, key: MessageKey, params: MessageParams = {}): string {
  return MESSAGES[lang][key].replace(/\{(\w+)\}/g, (whole, name: string) => {
    const value = params[name];
    return value === undefined ? whole : String(value);
  });
}

/** Whether a stored or requested value names a supported language. */
export function isLang(value: unknown): value is Lang {
  return value === "ko" || value === "en";
}
