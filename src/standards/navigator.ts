/** `navigator` global (flag `global_navigator`, spec §2.7 and §6) */
export class Navigator {
  readonly userAgent = "Cloudflare-Workers";
}
