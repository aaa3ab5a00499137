/** Payments from the prepaid balance. */
export { Payment, PaymentSchema, type PaymentStatus } from "./payment.entity.js";
export { PaymentRepository, type Refund } from "./payment.repository.js";
export {
  type AdmissionEnder,
  type PaymentResult,
  PaymentsService,
  type SaleRecorder,
} from "./payments.service.js";
